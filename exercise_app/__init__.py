"""The starter app the candidate changes. It arrives with the exercise (issue 3)."""

"""The research assistant: the starter app the candidate changes."""

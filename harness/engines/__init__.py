"""faultfirst on the engines graders already run: a Gradescope autograder zip (a container per
submission) and a GitHub Actions workflow (a job per submission, then one table).

`matrix` imports the standard library only: the workflow's first job runs it from a bare
checkout, before anything is installed.
"""

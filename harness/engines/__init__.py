"""faultfirst on the engines graders already run: a Gradescope autograder zip (a container per
submission) and a GitHub Actions workflow (a job per submission, then one table).

Nothing here imports more than the standard library at import time: the workflow's first job runs
`harness.engines.matrix` from a checkout, before anything is installed.
"""

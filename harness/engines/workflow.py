"""``faultfirst export-workflow DIR``: the interviewer's GitHub Actions workflow that grades a list
of submissions, one job each, and compares them in one table.

The workflow goes into the interviewer's own private repository holding faultfirst, its hidden
scenarios included (DIR: its checkout), and grades with that repository at the commit the run
starts from: never with anything of a candidate's. Its dependencies are pinned beside it
(``.github/grader-requirements.txt``), at the versions installed here, so that every job of a
run, and every run, grades on the same releases. What the workflow does, and why, its own comments
say (``templates/grade-submissions.yml``); `harness.engines.matrix` lists and fetches the
submissions for it.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from ..grading.tasks import CORE_TASKS, name_tasks, parse_tasks
from . import pins

TEMPLATE = Path(__file__).with_name("templates") / "grade-submissions.yml"
# Not named faultfirst-*: faultfirst's own .gitignore, which the interviewer's copy has, ignores
# those (the reports a grade leaves).
WORKFLOW = Path(".github", "workflows", "grade-submissions.yml")
REQUIREMENTS = Path(".github", "grader-requirements.txt")
SUBMISSIONS = Path(".github", "submissions.txt")
# The workflow's line naming the tasks it grades unless a run says otherwise.
TASKS_LINE = "        default: {}\n"
NEEDED = (Path("harness"), Path("scenarios", "hidden"), Path("pyproject.toml"))
SUBMISSIONS_EXAMPLE = """\
# The submissions to grade when a run is started without any: one or more a line, separated by
# spaces or commas; a line starting with # is a comment. NAME=ADDRESS names one in the table.
#   https://github.com/OWNER/REPO                a repository's default branch
#   https://github.com/OWNER/REPO@REF            a branch, tag or commit of it
#   https://github.com/OWNER/REPO/pull/12        a pull request's head
#   https://HOST/PATH/NAME.zip                   an archive (.zip, .tar.gz, .tgz, .tar ...)
#   ada=https://github.com/OWNER/REPO
"""


class ExportError(Exception):
    """The workflow could not be written; one line for people."""


def export_workflow(
    destination: Path, *, tasks: typing.Sequence[str] = CORE_TASKS
) -> list[Path]:
    """Write the workflow, its pinned requirements and (if there is none) an example list of
    submissions into the faultfirst checkout `destination`; return what was written, relative
    to it."""
    missing = [path.as_posix() for path in NEEDED if not (destination / path).exists()]
    if missing:
        raise ExportError(
            f"{destination} is not a checkout of faultfirst with hidden scenarios (no "
            f"{', '.join(missing)}): the workflow grades with the repository it lives in, so "
            "write it into the interviewer's private copy of faultfirst"
        )
    try:
        requirements = pins.requirements_text(destination / "pyproject.toml")
    except pins.PinError as error:
        raise ExportError(str(error)) from None
    texts = {
        WORKFLOW: workflow_text(TEMPLATE.read_text(), tasks),
        REQUIREMENTS: requirements,
    }
    if not (destination / SUBMISSIONS).exists():
        texts[SUBMISSIONS] = SUBMISSIONS_EXAMPLE
    for path, text in texts.items():
        (destination / path).parent.mkdir(parents=True, exist_ok=True)
        (destination / path).write_text(text, encoding="utf-8")
    return list(texts)


def workflow_text(template: str, tasks: typing.Sequence[str] = CORE_TASKS) -> str:
    """The workflow, grading `tasks` unless a run names others."""
    try:
        return name_tasks(template, TASKS_LINE, tasks)
    except ValueError as error:
        raise ExportError(str(error)) from None


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``faultfirst export-workflow DIR`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "export-workflow",
        help="write a GitHub Actions workflow that grades many submissions, a job each",
        description=f"Write {WORKFLOW.as_posix()} into DIR, the interviewer's private checkout "
        "of faultfirst (hidden scenarios included): started by hand with a list of "
        "submissions (git repositories, pull requests, archive addresses), it grades each in a "
        "job of its own with DIR's grader, keeps each grade as an artifact, and builds the "
        "comparison table into the run's summary and table.csv. Beside it: "
        f"{REQUIREMENTS.as_posix()} (the dependencies, pinned at the versions installed here) "
        f"and, if missing, {SUBMISSIONS.as_posix()} (the list a run takes when given none).",
    )
    command.add_argument(
        "dir", type=Path, metavar="DIR", help="the root of the faultfirst checkout to write into"
    )
    command.add_argument(
        "--tasks",
        default=",".join(CORE_TASKS),
        metavar="LIST",
        help="the tasks a run grades unless it names others, comma-separated, or 'all' "
        f"(default: {','.join(CORE_TASKS)})",
    )
    command.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    destination: Path = args.dir
    try:
        tasks = parse_tasks(args.tasks)
        written = export_workflow(destination, tasks=tasks)
    except (ExportError, ValueError, OSError) as error:
        print(f"faultfirst export-workflow: {error}", file=sys.stderr)
        return 2
    print(f"Wrote into {destination}: {', '.join(path.as_posix() for path in written)}.")
    print(f"Runs grade these tasks unless told otherwise: {', '.join(tasks)}.")
    print("Next: commit them, push to the private repository, set the secret FAULTFIRST_GIT_TOKEN")
    print("if candidates' repositories are private, and start 'faultfirst grade submissions' from")
    print("the Actions tab with the submissions' addresses.")
    return 0

"""``faultfirst report``: any report again, from a saved grade.

The JSON a grade wrote is made a `Grade` again (`harness.grading.saved`) and handed to the same
renderers the grading run used, so each report is the one the run would have written.

Exit status: 0 when the reports are written; 2 when the file is no grade this faultfirst reads.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from ..grading import colour, gradescope, html_report, junit, reports, saved
from ..grading.scoreboard import print_board
from ..submissions.grader import deliver

EXIT_NOT_A_GRADE = 2


def add_command(commands: typing.Any) -> None:
    """Add ``report`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "report",
        help="make a grade's reports again from its saved JSON",
        description="Read GRADE.json, the JSON that `faultfirst grade --json` or pytest's "
        "--faultfirst-json wrote, and write the reports asked for, each as the grading run would "
        "have written it. With no report asked for, print the grade's score board.",
        epilog="Exit status: 0 once the reports are written; 2 if GRADE.json is no grade this "
        "faultfirst reads (another file, or a grade of another schema version).",
    )
    command.add_argument("grade", metavar="GRADE.json", type=Path, help="a saved grade")
    command.add_argument(
        "--html", metavar="PATH", type=Path, help="one self-contained page with every timeline"
    )
    command.add_argument(
        "--md",
        metavar="PATH",
        type=Path,
        help="the grade as Markdown; appended when PATH is $GITHUB_STEP_SUMMARY",
    )
    command.add_argument(
        "--junitxml",
        dest="junit",
        metavar="PATH",
        type=Path,
        help="JUnit XML, for CI: a testcase per scenario (see docs/reports.md for how it "
        "differs from the file pytest writes)",
    )
    command.add_argument(
        "--gradescope", metavar="PATH", type=Path, help="Gradescope's autograder results.json"
    )
    colour.add_option(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = saved.load(args.grade)
    except saved.NotAGrade as error:
        print(f"faultfirst report: {error}", file=sys.stderr)
        return EXIT_NOT_A_GRADE
    grade, started_at = loaded.grade, loaded.started_at
    texts: dict[str, typing.Callable[[], str]] = {
        "md": lambda: reports.grade_markdown(grade),
        "html": lambda: html_report.grade_html(grade, started_at=started_at),
        "junit": lambda: junit.junit_text(grade, started_at=started_at),
        "gradescope": lambda: gradescope.gradescope_text(grade),
    }
    asked = {kind: getattr(args, kind) for kind in texts if getattr(args, kind) is not None}
    if not asked:
        print_board(loaded.grade, paint=colour.Paint(colour.wanted(args.color, sys.stdout)))
    for kind, path in asked.items():
        deliver(texts[kind](), path)
        print(f"{kind} report: {path}")
    return 0

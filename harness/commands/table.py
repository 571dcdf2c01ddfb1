"""``faultfirst table``: the comparison table of saved grades, the one ``faultfirst grade A B``
prints, for grades made apart (a CI job per submission, say) and brought together.

Each grade is read as `faultfirst report` reads one (`harness.grading.saved`) and becomes the
row `faultfirst grade` made of it: its name and source, its status, its whole JSON and the wall
time it records (`faultfirst grade` records it; a grade pytest wrote has its run's duration).

Exit status: 0 once the table is printed and written; 2 if a file is no grade this faultfirst
reads (the table is then neither printed nor written).
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from ..grading import colour, saved
from ..submissions.grader import Outcome
from . import comparison

EXIT_NOT_A_GRADE = 2


def add_command(commands: typing.Any) -> None:
    """Add ``table`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "table",
        help="the comparison table of saved grades",
        description="Read each GRADE.json (what `faultfirst grade --json` or pytest's "
        "--faultfirst-json wrote) and print the comparison table `faultfirst grade` prints for a "
        "batch: a row per grade, in the order given, with the points of every task, the total, "
        "the status and the time it took. Write it too with --csv, --md and --json.",
        epilog="Exit status: 0 once the table is printed and written; 2 if a file is no grade "
        "this faultfirst reads.",
    )
    command.add_argument("grades", nargs="+", metavar="GRADE.json", type=Path, help="saved grades")
    command.add_argument("--csv", metavar="PATH", type=Path, help="the table as CSV")
    command.add_argument(
        "--md",
        metavar="PATH",
        type=Path,
        help="the table as Markdown; appended when PATH is $GITHUB_STEP_SUMMARY",
    )
    command.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        help="the table as JSON, each row with its whole grade (as `grade --table-json`)",
    )
    colour.add_option(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = [saved.load_row(path) for path in args.grades]
    except saved.NotAGrade as error:
        print(f"faultfirst table: {error}", file=sys.stderr)
        return EXIT_NOT_A_GRADE
    outcomes = outcomes_of(loaded)
    paint = colour.Paint(colour.wanted(args.color, sys.stdout))
    for line in comparison.table(outcomes, paint=paint):
        print(line)
    if args.csv is not None:
        comparison.write_csv(args.csv, outcomes)
    if args.md is not None:
        comparison.write_markdown(args.md, outcomes)
    if args.json is not None:
        comparison.write_json(args.json, outcomes)
    return 0


def outcomes_of(grades: list[saved.SavedGrade | saved.NotGraded]) -> list[Outcome]:
    """The rows `faultfirst grade` made of these grades. A row is named as the grade names its
    submission, or by the folder's name where pytest graded it (and named it by its path), made
    unique as `faultfirst grade` makes its names (``alice``, ``alice-2``). A submission that was
    not graded keeps its row, with the reason, as in the batch's own table."""
    outcomes: list[Outcome] = []
    for loaded in grades:
        if isinstance(loaded, saved.NotGraded):
            outcome = _not_graded(loaded)
        else:
            outcome = _graded(loaded)
        outcome.name = comparison.unique_name(outcome.name, [o.name for o in outcomes])
        outcomes.append(outcome)
    return outcomes


def _graded(loaded: saved.SavedGrade) -> Outcome:
    grade = loaded.grade
    by_pytest = grade.source is None  # which named the submission by its path
    return Outcome(
        name=Path(grade.submission).name if by_pytest else grade.submission,
        source=grade.submission if by_pytest else typing.cast(str, grade.source),
        status=grade.status,
        report=loaded.data,
        wall_time=grade.duration if grade.wall_time is None else grade.wall_time,
        digest=grade.digest,
    )


def _not_graded(record: saved.NotGraded) -> Outcome:
    return Outcome(
        name=record.submission,
        source=record.source,
        status="not graded",
        reason=record.reason,
        wall_time=record.wall_time,
    )

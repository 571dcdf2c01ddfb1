"""The comparison table of a batch of graded submissions: for the terminal, as CSV, JSON and
Markdown. `faultfirst grade` makes it from the grades it just made, `faultfirst table` from saved
ones (`harness.commands.table`): the same rows either way.

One row per submission: its name, the points of every task, the total, its status and how long
grading it took. A submission that could not be graded keeps its row, with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import typing
from pathlib import Path

from ..grading.colour import PLAIN, Paint
from ..grading.reports import inline_markdown
from ..grading.sanitize import one_line
from ..grading.tasks import TASKS
from ..submissions.grader import Outcome, deliver

SCHEMA = "faultfirst-comparison"
SCHEMA_VERSION = 1

Json = dict[str, typing.Any]


def unique_name(name: str, taken: typing.Collection[str]) -> str:
    """A row's name: `name` without control characters (a candidate chose it), made unique
    (``alice``, ``alice-2``) among those `taken`."""
    name = one_line(name, limit=100) or "submission"
    unique, number = name, 1
    while unique in taken:
        number += 1
        unique = f"{name}-{number}"
    return unique


def tasks_of(outcomes: list[Outcome]) -> list[str]:
    """The tasks graded in any of `outcomes`, in the order of `TASKS`."""
    seen = {
        task["id"] for outcome in outcomes if outcome.report for task in outcome.report["tasks"]
    }
    return [task for task in TASKS if task in seen]


def table(outcomes: list[Outcome], *, paint: Paint = PLAIN) -> list[str]:
    """The table as lines of text, for the terminal: with `paint`, each total coloured by its
    share of the points and each status by what it says (the text stays the same)."""
    tasks = tasks_of(outcomes)
    header = _header(tasks)
    rows = [_cells(outcome, tasks) for outcome in outcomes]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [_line(header, widths), "  ".join("-" * width for width in widths)]
    for outcome, row in zip(outcomes, rows):
        lines.append(_line(row, widths, outcome, paint))
    for outcome in outcomes:
        if outcome.reason:
            lines.append(f"{outcome.name}: {outcome.reason}")
    return lines


def to_markdown(outcomes: list[Outcome]) -> str:
    """The table as GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY``: a heading, the
    table, and why each submission not graded was not."""
    tasks = tasks_of(outcomes)
    header = _header(tasks)
    right = [column != 0 and column != len(header) - 2 for column in range(len(header))]
    lines = [
        f"## faultfirst: {len(outcomes)} submission{'s' if len(outcomes) != 1 else ''}",
        "",
        "| " + " | ".join(inline_markdown(cell) for cell in header) + " |",
        "| " + " | ".join("---:" if r else ":---" for r in right) + " |",
    ]
    for outcome in outcomes:
        cells = _cells(outcome, tasks)
        lines.append("| " + " | ".join(inline_markdown(cell) for cell in cells) + " |")
    reasons = [outcome for outcome in outcomes if outcome.reason]
    if reasons:
        lines.append("")
        lines += [f"- {inline_markdown(o.name)}: {inline_markdown(o.reason)}" for o in reasons]
    return "\n".join(lines) + "\n"


def to_csv(outcomes: list[Outcome]) -> str:
    """The table as CSV: a column of points per task, then the total and the rest."""
    tasks = tasks_of(outcomes)
    after = ["earned", "possible", "percentage", "status", "wall_time", "digest", "reason"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", *tasks, *after])
    for outcome in outcomes:
        row = _row_json(outcome, tasks)
        points = [_points(row["tasks"].get(task)) for task in tasks]
        writer.writerow([outcome.name, *points, *(row[column] for column in after)])
    return out.getvalue()


def to_json(outcomes: list[Outcome]) -> Json:
    """The table as JSON: a row per submission, each with its whole grade report."""
    tasks = tasks_of(outcomes)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tasks": tasks,
        "submissions": [_row_json(outcome, tasks) for outcome in outcomes],
    }


def write_csv(path: Path, outcomes: list[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv(outcomes), encoding="utf-8")


def write_json(path: Path, outcomes: list[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(outcomes), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def _row_json(outcome: Outcome, tasks: list[str]) -> Json:
    report = outcome.report
    scores = {task["id"]: task for task in report["tasks"]} if report else {}
    return {
        "submission": outcome.name,
        "source": outcome.source,
        "status": outcome.status,
        "reason": outcome.reason,
        "tasks": {
            task: {"earned": scores[task]["earned"], "possible": scores[task]["possible"]}
            for task in tasks
            if task in scores
        },
        "earned": report["score"]["earned"] if report else 0,
        "possible": report["score"]["possible"] if report else 0,
        "percentage": report["score"]["percentage"] if report else 0,
        "wall_time": round(outcome.wall_time, 1),
        "digest": outcome.digest,
        "grade": report,
    }


def write_markdown(path: Path, outcomes: list[Outcome]) -> None:
    """Write `to_markdown` to `path`; appended when it is ``$GITHUB_STEP_SUMMARY``."""
    deliver(to_markdown(outcomes), path)


def _header(tasks: list[str]) -> list[str]:
    return ["submission", *(TASKS[task] for task in tasks), "total", "%", "status", "time"]


def _line(
    row: list[str], widths: list[int], outcome: Outcome | None = None, paint: Paint = PLAIN
) -> str:
    """A row, its submission and status left-aligned, the rest right-aligned; coloured after
    aligning, so that colour takes no room."""
    status_column = len(row) - 2
    cells = [
        cell.ljust(width) if column in (0, status_column) else cell.rjust(width)
        for column, (cell, width) in enumerate(zip(row, widths))
    ]
    if outcome is not None and paint.enabled:
        report = outcome.report
        if report is not None:
            score = report["score"]
            for column in (status_column - 2, status_column - 1):  # the total and the %
                cells[column] = paint.share(cells[column], score["earned"], score["possible"])
        cells[status_column] = paint.status(cells[status_column], outcome.status)
    return "  ".join(cells).rstrip()


def _cells(outcome: Outcome, tasks: list[str]) -> list[str]:
    row = _row_json(outcome, tasks)
    graded = outcome.report is not None
    return [
        outcome.name,
        *(_points(row["tasks"].get(task)) for task in tasks),
        f"{row['earned']}/{row['possible']}" if graded else "-",
        f"{row['percentage']:.0f}" if graded else "-",
        outcome.status,
        f"{outcome.wall_time:.1f}s",
    ]


def _points(score: Json | None) -> str:
    return f"{score['earned']}/{score['possible']}" if score else "-"

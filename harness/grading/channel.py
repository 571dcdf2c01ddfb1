"""How a grading run hands its grade to `faultfirst grade`: one JSON object on an inherited pipe.

A report file would be a path: it shows in the run's command line, and an app that finds it can
write a grade of its own there. The pipe's write end exists only in the grading run, which sends
every report asked for (``{"json": text, "md": text, ...}``) once, at its very end, and then
exits 0; `faultfirst grade` believes a grade only from a run that did both.
"""

from __future__ import annotations

import json
import os

KINDS = ("json", "md", "html", "junit", "gradescope")

# Far above any real grade (the HTML report of every task is about 1 MB), far below what could
# hurt the grader's memory.
LIMIT = 64 * 2**20


class ChannelError(ValueError):
    """What came through the pipe is no grade; the message says why, for people."""


def parse_kinds(text: str) -> tuple[str, ...]:
    """The report kinds in a comma-separated list; ValueError naming one that does not exist."""
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown report {unknown[0]!r}: choose from {', '.join(KINDS)}")
    return kinds


def send(fd: int, reports: dict[str, str]) -> None:
    """Write `reports` (kind -> text) to `fd` and close it."""
    with os.fdopen(fd, "w", encoding="utf-8") as pipe:
        json.dump(reports, pipe, ensure_ascii=False)


def receive(data: bytes, kinds: tuple[str, ...]) -> dict[str, str]:
    """The reports in what a grading run sent; `ChannelError` unless it holds a text for every
    kind in `kinds`, and nothing else."""
    if not data:
        raise ChannelError("it sent no grade")
    try:
        reports = json.loads(data.decode("utf-8"))
    except ValueError:
        raise ChannelError("what it sent is not a grade") from None
    if (
        not isinstance(reports, dict)
        or set(reports) != set(kinds)
        or not all(isinstance(text, str) for text in reports.values())
    ):
        raise ChannelError("what it sent is not the grade asked for")
    try:
        grade = json.loads(reports["json"]) if "json" in reports else {}
    except ValueError:
        raise ChannelError("its JSON report is not JSON") from None
    if not isinstance(grade, dict):
        raise ChannelError("its JSON report is not a grade")
    return reports

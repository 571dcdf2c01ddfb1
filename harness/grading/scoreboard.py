"""The score board printed at the end of a run: points per task, then what to fix.

The same board ends a pytest run, a `faultfirst grade` and a `faultfirst report`, coloured (see
`harness.grading.colour`) or not; the colour never changes a character of the text.
"""

from __future__ import annotations

import shutil
import textwrap

from .colour import PLAIN, Paint
from .evidence import timeline
from .results import Grade, ScenarioResult, Status

WIDTH = 88
TITLE = "faultfirst score board"


def scoreboard(
    grade: Grade, *, evidence: bool = True, paint: Paint = PLAIN, note: str | None = None
) -> list[str]:
    """The board as lines: a row per task, the total (and `note` about it, if any), then every
    scenario that did not pass with its reason, hint and (with `evidence`) the timeline of what
    the app did."""
    lines = [f"{'task':<22} {'points':>9}"]
    for score in grade.task_scores():
        bonus = f"  (+{score.bonus_earned}/{score.bonus_possible} bonus)" if score.bonus_possible else ""
        points = f"{score.earned:>4} / {score.possible:<3}"
        points = paint.share(points, score.earned, score.possible)
        lines.append(f"{score.title:<22} {points}{bonus}")
    total = paint.share(
        f"{grade.earned:>4} / {grade.possible:<3}  {grade.percentage:.0f}%",
        grade.earned,
        grade.possible,
        "bold",
    )
    lines.append(paint.style("total", "bold") + " " * (22 - len("total")) + f" {total}")
    if note:
        lines += [paint.style(line, "yellow") for line in textwrap.wrap(note, WIDTH)]
    failures = grade.failures()
    if grade.status == "ungradable":
        # Each scenario would say the same thing (an import that fails, fails every time): once.
        never = [result for result in failures if result.status is Status.APP_DID_NOT_START]
        reasons = list(dict.fromkeys(result.reason or "(no reason given)" for result in never))
        where = _scenarios(len(never))
        lines.append(paint.bad(f"The app could not be graded: it never started, in {where}."))
        for reason in reasons:
            lines += _wrapped("why: ", reason)
        failures = [result for result in failures if result not in never]
    if grade.status == "incomplete":
        stopped = "The run was stopped before every scenario ran: those score nothing."
        lines.append(paint.style(stopped, "yellow"))
    lines.append(
        f"tokens billed by the fake provider: {grade.tokens_billed}, "
        f"read by nobody: {grade.tokens_unread}"
    )
    lines.append(grade.isolation.summary())
    for result in failures:
        lines.append("")
        lines += describe(result, evidence=evidence, paint=paint)
    return lines


def print_board(grade: Grade, *, paint: Paint = PLAIN) -> None:
    """Print the score board as a pytest run ends with it: a heading across the terminal."""
    print(heading(shutil.get_terminal_size().columns))
    for line in scoreboard(grade, paint=paint):
        print(line)

def heading(width: int) -> str:
    """The line above the board, as pytest writes it across a terminal `width` wide."""
    width = width if width >= 40 else 80  # as pytest's terminal writer takes it
    fill = "=" * max((width - len(TITLE) - 2) // 2, 1)
    line = f"{fill} {TITLE} {fill}"
    return line + "=" if len(line) + 1 <= width else line


def _scenarios(count: int) -> str:
    return "its one scenario" if count == 1 else f"any of its {count} scenarios"


def describe(result: ScenarioResult, *, evidence: bool = True, paint: Paint = PLAIN) -> list[str]:
    """One scenario that did not pass: title, status, reason, hint, evidence."""
    scenario = result.scenario
    worth = "not counted" if result.status is Status.HARNESS_ERROR else f"0/{scenario.points}"
    head = f"✗ [{scenario.task}] {scenario.title} — {result.status} ({worth})"
    ours = result.status is Status.HARNESS_ERROR  # our bug, not the candidate's: no red for it
    lines = [paint.style(head, "yellow") if ours else paint.bad(head)]
    lines += _wrapped("why: ", result.reason or "(no reason given)")
    if result.status is Status.HARNESS_ERROR:
        lines += _wrapped("note: ", "this is a bug in the grader, not in your app; it costs no points")
    else:
        lines += _wrapped("hint: ", scenario.hint)
    if evidence and (result.evidence.attempts or result.evidence.user_left):
        lines += ["  what the app did:"] + ["  " + line for line in timeline(result.evidence)]
    return lines


def _wrapped(label: str, text: str) -> list[str]:
    wrapped = []
    for number, paragraph in enumerate(text.splitlines() or [""]):
        first = "  " + label if number == 0 else "  " + " " * len(label)
        wrapped += textwrap.wrap(
            paragraph, WIDTH, initial_indent=first, subsequent_indent="  " + " " * len(label)
        ) or [first]
    return wrapped

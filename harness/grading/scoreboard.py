"""The score board printed at the end of a run: points per task, then what to fix."""

from __future__ import annotations

import textwrap

from .evidence import timeline
from .results import Grade, ScenarioResult, Status

WIDTH = 88


def scoreboard(grade: Grade, *, evidence: bool = True, note: str | None = None) -> list[str]:
    """The board as lines: a row per task, the total (and `note` about it, if any), then every
    scenario that did not pass with its reason, hint and (with `evidence`) the timeline of what
    the app did."""
    lines = [f"{'task':<22} {'points':>9}"]
    for score in grade.task_scores():
        bonus = f"  (+{score.bonus_earned}/{score.bonus_possible} bonus)" if score.bonus_possible else ""
        lines.append(f"{score.title:<22} {score.earned:>4} / {score.possible:<3}{bonus}")
    lines.append(f"{'total':<22} {grade.earned:>4} / {grade.possible:<3}  {grade.percentage:.0f}%")
    if note:
        lines += textwrap.wrap(note, WIDTH)
    failures = grade.failures()
    if grade.status == "ungradable":
        # Each scenario would say the same thing (an import that fails, fails every time): once.
        never = [result for result in failures if result.status is Status.APP_DID_NOT_START]
        reasons = list(dict.fromkeys(result.reason or "(no reason given)" for result in never))
        lines.append(f"The app could not be graded: it never started, in {_scenarios(len(never))}.")
        for reason in reasons:
            lines += _wrapped("why: ", reason)
        failures = [result for result in failures if result not in never]
    if grade.status == "incomplete":
        lines.append("The run was stopped before every scenario ran: those score nothing.")
    lines.append(
        f"tokens billed by the fake provider: {grade.tokens_billed}, "
        f"read by nobody: {grade.tokens_unread}"
    )
    lines.append(grade.isolation.summary())
    for result in failures:
        lines.append("")
        lines += describe(result, evidence=evidence)
    return lines


def _scenarios(count: int) -> str:
    return "its one scenario" if count == 1 else f"any of its {count} scenarios"


def describe(result: ScenarioResult, *, evidence: bool = True) -> list[str]:
    """One scenario that did not pass: title, status, reason, hint, evidence."""
    scenario = result.scenario
    worth = "not counted" if result.status is Status.HARNESS_ERROR else f"0/{scenario.points}"
    lines = [f"✗ [{scenario.task}] {scenario.title} — {result.status} ({worth})"]
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

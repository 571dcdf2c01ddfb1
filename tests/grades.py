"""Builders of grades for the report tests, so that JSON, Markdown, HTML and Gradescope are
tested against results made the same way. Each test module keeps its own sample grade."""

from __future__ import annotations

import typing

from harness.grading.evidence import Attempt, Evidence
from harness.grading.marks import Scenario
from harness.grading.results import Grade, ScenarioResult, Status


def attempt(number: int, **fields: typing.Any) -> Attempt:
    """A call to the provider, answered at once with nothing: tests set only what they look at."""
    values: dict[str, typing.Any] = {
        "number": number,
        "model": "fake-large",
        "stream": True,
        "fault": "none",
        "status": 200,
        "outcome": "completed",
        "at": 0.0,
        "gap": None,
        "first_token": None,
        "ended": None,
        "tokens": 0,
        "hung_up": None,
    }
    values.update(fields)
    return Attempt(**values)


def retried(number: int) -> Attempt:
    """Call `number` of a question asked again: the first is refused with a 503, the rest
    stream 12 tokens, a call every 0.1 s."""
    timing = {"at": 0.1 * number, "ended": 0.1 * number + 0.2}
    if number == 1:
        return attempt(1, fault="error(503)", status=503, outcome="rejected", **timing)
    return attempt(number, gap=0.1, first_token=0.1 * number + 0.05, tokens=12, **timing)


def retries(count: int, user_left: list[float] | None = None) -> Evidence:
    """`count` calls made by `retried`, half of whose tokens nobody read."""
    made = [retried(number) for number in range(1, count + 1)]
    billed = sum(a.tokens for a in made)
    return Evidence(
        attempts=made, user_left=user_left or [], tokens_billed=billed, tokens_unread=billed // 2
    )


def scenario(
    name: str,
    *,
    task: str = "retries",
    points: int = 2,
    title: str = "",
    hint: str = "",
    bonus: bool = False,
    hidden: bool = False,
) -> Scenario:
    """A scenario whose title and hint name it, so that tests can find them in a report."""
    return Scenario(
        id=name,
        task=task,
        points=points,
        title=title or f"Title of {name}",
        hint=hint or f"Hint for {name}.",
        bonus=bonus,
        hidden=hidden,
    )


def new_grade(submission: str = "submissions/ada-lovelace.zip", duration: float = 12.345) -> Grade:
    """A grade with no results yet, of the run the sample grades describe: tests check its
    submission, seed and duration in every report."""
    tasks = ("streaming", "retries", "fallback")
    return Grade(submission, tasks, seed=7, app_mode="subprocess", duration=duration)


def result(
    name: str,
    status: Status,
    *,
    reason: str = "",
    evidence: Evidence | None = None,
    attempts: int = 0,
    duration: float = 1.5,
    **marks: typing.Any,
) -> ScenarioResult:
    """The result of `scenario(name, **marks)`; its evidence is `evidence`, else
    `retries(attempts)`. It lasts past its calls, so that a call still open is drawn to its end."""
    made = evidence if evidence is not None else retries(attempts)
    return ScenarioResult(scenario(name, **marks), status, reason, made, duration=duration)

"""The grade as Gradescope's autograder results, the ``/autograder/results/results.json`` that a
Gradescope ``run_autograder`` script must leave behind.

It follows Gradescope's autograder specification
(https://gradescope-autograders.readthedocs.io/en/latest/specs/) and uses only the fields it
documents. The choices, and why:

- One test per scenario, named ``Task · title``, numbered ``task.scenario`` in task order and
  tagged with the task's id (and ``bonus``). Within a task the visible scenarios come first, so
  what a candidate sees is numbered without gaps. Like the grade's scores, it leaves out any
  result of a task not being graded (the plugin deselects those scenarios anyway).
- A scenario is worth its points: ``score`` is what it earned, ``max_score`` its points, and
  ``status`` says ``passed`` or ``failed`` outright (Gradescope would otherwise guess it from
  the score). The tests' ``max_score`` add up to ``grade.possible``.
- Bonus scenarios count in no ``possible``, so their ``max_score`` is 0 and a passed one scores
  its points anyway: extra credit. The top-level ``score`` (which, the specification says,
  overrides the sum of the tests) is ``grade.earned`` plus the bonus earned, the same as that
  sum. ``results.json`` has no field for the assignment's total: set it on Gradescope to the
  points possible, and a bonus takes a score above it.
- A harness error is our bug: 0 out of 0, ``failed``, and its output says it costs nothing.
- Hidden scenarios get ``"visibility": "after_published"``: a candidate sees them, with their
  reasons and hints, only once the instructor publishes the grades. ``hidden`` would keep them
  from the candidate for good, which helps nobody after the interview; ``after_due_date`` would
  show them to an early finisher while others still work. The specification notes that while
  any test is hidden a student does not see the total score either: that is wanted, as the
  total would give the hidden results away. For the same reason the top-level ``output``,
  always visible, names no score.
- Texts are plain (``output_format``, ``name_format``: ``text``): reasons quote what the
  candidate's app printed, which must not render as HTML or Markdown on Gradescope's page.
- ``stdout_visibility`` is ``hidden``: the run's own output names every hidden scenario.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

from .evidence import timeline
from .results import Grade, ScenarioResult, Status
from .tasks import TASKS

Json = dict[str, typing.Any]

HIDDEN_VISIBILITY = "after_published"


def gradescope_results(grade: Grade) -> Json:
    """The grade as Gradescope's ``results.json`` data (see the module's docstring)."""
    tests = []
    for task_number, task in enumerate(grade.tasks, 1):
        mine = [result for result in grade.results if result.scenario.task == task]
        mine.sort(key=lambda result: result.scenario.hidden)  # stable: visible ones first
        for number, result in enumerate(mine, 1):
            tests.append(_test(result, f"{task_number}.{number}"))
    bonus = sum(score.bonus_earned for score in grade.task_scores())
    return {
        "score": grade.earned + bonus,
        "execution_time": round(grade.duration),
        "output": _summary(grade),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {
            "harness_version": grade.harness_version,
            "submission": grade.submission,
            "files": {"digest": grade.digest, "count": grade.files},
            "seed": grade.seed,
            "app_mode": grade.app_mode,
            "isolation": grade.isolation.level,
        },
        "tests": tests,
    }


def write_gradescope(path: str | Path, grade: Grade) -> None:
    """Write `gradescope_results` to `path` (UTF-8 JSON), replacing it, creating its folder.
    On Gradescope the path is ``/autograder/results/results.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gradescope_text(grade), encoding="utf-8")


def gradescope_text(grade: Grade) -> str:
    """`gradescope_results` as the text of the file."""
    data = gradescope_results(grade)
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _test(result: ScenarioResult, number: str) -> Json:
    scenario = result.scenario
    counted = result.counted and not scenario.bonus
    return {
        "name": f"{TASKS.get(scenario.task, scenario.task)} · {scenario.title}",
        "name_format": "text",
        "number": number,
        "score": result.earned,
        "max_score": scenario.points if counted else 0,
        "status": "passed" if result.status is Status.PASSED else "failed",
        "output": _output(result),
        "output_format": "text",
        "tags": [scenario.task] + (["bonus"] if scenario.bonus else []),
        "visibility": HIDDEN_VISIBILITY if scenario.hidden else "visible",
        "extra_data": {"scenario": scenario.id, "status": _status_text(result)},
    }


def _status_text(result: ScenarioResult) -> str:
    status: object = result.status
    return str(getattr(status, "value", status))


def _output(result: ScenarioResult) -> str:
    """What the candidate reads under the test: the result, why, the hint, what the app did."""
    scenario = result.scenario
    status = _status_text(result)
    if result.status is Status.HARNESS_ERROR:
        lines = [f"{status}: not counted, a bug in the grader, not in your app"]
    elif scenario.bonus:
        lines = [f"{status}: +{result.earned} / {scenario.points} bonus points"]
    else:
        lines = [f"{status}: {result.earned} / {scenario.points} points"]
    if result.reason:
        lines += ["", "Why: " + result.reason]
    if result.status not in (Status.PASSED, Status.HARNESS_ERROR):
        lines += ["", "Hint: " + scenario.hint]
        evidence = result.evidence
        if evidence.attempts or evidence.user_left:
            lines += ["", "What the app did (seconds since it was ready):"]
            lines += timeline(evidence)
    return "\n".join(lines)


def _summary(grade: Grade) -> str:
    """The top-level output. It is always visible, so it gives no score away: the tests'
    visibility decides what a candidate sees of those."""
    lines = [
        f"Graded by faultfirst {grade.harness_version} under injected faults (seed {grade.seed}).",
        "Each test below is one scenario; its output says what the app did wrong and how to "
        "fix it.",
    ]
    if any(result.scenario.hidden for result in grade.results):
        lines.append("More scenarios are shown when the grades are published.")
    if grade.status == "ungradable":
        lines.append("The app never started, so it could not be graded: the tests say why.")
    if grade.status == "incomplete":
        lines.append("The run was stopped before every scenario ran: those score nothing.")
    return "\n".join(lines)

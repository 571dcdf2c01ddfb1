"""One grading run inside pytest: which scenarios take part, their apps, and their results.

The plugin (`harness.plugin`) is the glue to pytest's hooks; this is what those hooks do.
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ..app_pool import AppPool, RunningApp
from ..fake_llm import FakeLLM
from ..launcher import AppDidNotStart
from . import marks
from .evidence import UserActivity, evidence_from
from .results import Grade, ScenarioResult, Status
from .scoreboard import describe, scoreboard


@dataclass
class ScenarioRun:
    """What the harness knows of one scenario while it runs."""

    users: UserActivity = field(default_factory=UserActivity)
    started_at: float = 0.0  # when its app was ready (time.monotonic())
    timed_out: bool = False


class GradingSession:
    def __init__(
        self, *, submission: Path, tasks: tuple[str, ...], seed: int, app_mode: str, time_limit: float
    ) -> None:
        self.grade = Grade(submission=str(submission), tasks=tasks, seed=seed, app_mode=app_mode)
        self.submission = submission
        self.time_limit = time_limit
        self.started_at = time.time()
        self._scenarios: dict[str, marks.Scenario] = {}
        self._pool: AppPool | None = None

    # -- collection ------------------------------------------------------------------------------

    def collect(self, items: list[pytest.Item], *, distributed: bool = False) -> list[pytest.Item]:
        """Read every scenario mark (a wrong one raises `MarkError`) and return the scenarios of
        tasks not being graded, to deselect. Scenarios cannot be `distributed` over xdist
        workers: each would grade, and report, only its own share."""
        deselected = []
        names: dict[str, str] = {}
        for item in items:
            scenario = marks.scenario_of(item)
            if scenario is None:
                continue
            if distributed:
                raise marks.MarkError(
                    f"{item.nodeid}: scenarios are graded in one process; run them without -n"
                )
            other = names.setdefault(scenario.id, item.nodeid.split("[")[0])
            if other != item.nodeid.split("[")[0]:
                raise marks.MarkError(f"{item.nodeid}: another scenario is named {scenario.id} ({other})")
            if scenario.task in self.grade.tasks:
                self._scenarios[item.nodeid] = scenario
            else:
                deselected.append(item)
        return deselected

    def scenario(self, item: pytest.Item) -> marks.Scenario | None:
        return self._scenarios.get(item.nodeid)

    # -- the app under test ----------------------------------------------------------------------

    @contextlib.contextmanager
    def app_for(
        self, run: ScenarioRun, settings: dict[str, str], upcoming: dict[str, str] | None
    ) -> typing.Iterator[RunningApp]:
        """A fresh app for one scenario, stopped when it ends or when its time limit passes
        (which fails the scenario as timed out, and frees it from an app that hangs).
        `upcoming` are the next scenario's settings, if another follows."""
        if self._pool is None:
            self._pool = AppPool(self.submission, self.grade.app_mode)
        pool = self._pool
        app = pool.start(settings, upcoming)
        run.started_at = time.monotonic()
        lock, stopped = threading.Lock(), [False]

        def stop() -> None:
            with lock:
                if not stopped[0]:
                    stopped[0] = True
                    pool.stop(app)

        def expire() -> None:
            run.timed_out = True
            stop()

        timer = threading.Timer(self.time_limit, expire)
        timer.daemon = True
        timer.start()
        try:
            yield app
        finally:
            timer.cancel()
            stop()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # -- results ---------------------------------------------------------------------------------

    def record(
        self,
        item: pytest.Item,
        report: pytest.TestReport,
        call: pytest.CallInfo[None],
        run: ScenarioRun | None,
    ) -> None:
        """Turn a scenario's setup or call report into its result, and make the report say it
        for people (the reason and hint instead of a traceback)."""
        scenario = self._scenarios[item.nodeid]
        if report.when == "teardown" or (report.when == "setup" and report.passed) or report.skipped:
            return
        if report.passed and not (run is not None and run.timed_out):
            status, reason = Status.PASSED, ""
        else:
            status, reason = classify(call.excinfo, run, self.time_limit)
        result = ScenarioResult(scenario, status, reason, duration=report.duration)
        fake = item.funcargs.get("fake_llm") if hasattr(item, "funcargs") else None
        if isinstance(fake, FakeLLM) and run is not None and run.started_at:
            result.evidence = evidence_from(fake.calls, run.started_at, run.users)
        self.grade.add(result)
        properties = [
            ("task", scenario.task),
            ("points", scenario.points),
            ("earned", result.earned),
            ("status", str(status)),
            ("title", scenario.title),
        ]
        report.user_properties += properties
        item.user_properties += properties  # what --junitxml writes, from the teardown report
        if status not in (Status.PASSED, Status.HARNESS_ERROR):
            report.longrepr = "\n".join(describe(result))

    def board(self) -> list[str]:
        return scoreboard(self.grade)


def classify(
    excinfo: pytest.ExceptionInfo[BaseException] | None, run: ScenarioRun | None, limit: float
) -> tuple[Status, str]:
    """Why a scenario did not pass: the app's fault (failed, timed out, did not start) or ours."""
    if run is not None and run.timed_out:
        return Status.TIMED_OUT, f"the scenario was still running after {limit:g}s, so the app was stopped"
    if excinfo is None:
        return Status.HARNESS_ERROR, "the scenario failed without an exception"
    error = _innermost(excinfo.value)
    if isinstance(error, AppDidNotStart):
        return Status.APP_DID_NOT_START, str(error)
    if isinstance(error, AssertionError):
        return Status.FAILED, human_message(error)
    if isinstance(error, httpx.TimeoutException):
        return Status.FAILED, "the app did not answer in time"
    if isinstance(error, httpx.HTTPError):
        return Status.FAILED, (
            f"the connection to the app failed ({type(error).__name__}: {error or 'no details'}); "
            "did it crash?"
        )
    if isinstance(error, TimeoutError):  # the ledger waited for calls the app never made
        return Status.FAILED, str(error)
    return Status.HARNESS_ERROR, f"{type(error).__name__}: {error}"


def human_message(error: AssertionError) -> str:
    """An assertion's own message, without the expression pytest appends to it."""
    message = str(error)
    for separator in ("\nassert ", "\n+  where", "\nAssertionError"):
        message = message.split(separator)[0]
    return message.strip() or "an assertion without a message failed (a bug in the scenario)"


def _innermost(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error

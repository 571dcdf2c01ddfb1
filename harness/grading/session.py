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

from ..fake_llm import FakeLLM
from ..hosting.app_pool import AppPool, RunningApp
from ..hosting.launcher import AppDidNotStart
from ..hosting.template import Template
from ..submissions.intake import PACKAGE, digest
from . import marks
from .evidence import UserActivity, evidence_from
from .results import Grade, ScenarioResult, Status
from .scoreboard import describe


@dataclass
class ScenarioRun:
    """What the harness knows of one scenario while it runs."""

    users: UserActivity = field(default_factory=UserActivity)
    started_at: float = 0.0  # when its app was ready (time.monotonic())
    timed_out: bool = False
    app: RunningApp | None = None


class GradingSession:
    def __init__(
        self,
        *,
        submission: Path,
        tasks: tuple[str, ...],
        seed: int,
        app_mode: str,
        time_limit: float,
        pool: typing.Callable[[Template | None], AppPool] | None = None,
        label: str | None = None,
    ) -> None:
        self.grade = Grade(
            submission=label or str(submission), tasks=tasks, seed=seed, app_mode=app_mode
        )
        self.grade.digest, self.grade.files = digest(submission / PACKAGE)
        self.submission = submission
        self.time_limit = time_limit
        self.started_at = time.time()
        self.run_expired: float | None = None  # the run's time limit, once it has passed
        self._scenarios: dict[str, marks.Scenario] = {}
        self._to_run: list[pytest.Item] = []
        self._left_out = 0  # scenarios of the graded tasks that pytest was told not to run
        self.narrowed = False  # pytest's --lf left whole files of scenarios out (the plugin says)
        self._make_pool = pool or (lambda template: AppPool(submission, app_mode))
        self._pool: AppPool | None = None
        # The template this lane forks its apps from, shared with the run's other lanes
        # (`lanes`); None: the pool starts its own, where apps are forked at all.
        self.template: Template | None = None
        self._stop_current: typing.Callable[[], None] | None = None

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
                raise marks.MarkError(
                    f"{item.nodeid}: another scenario is named {scenario.id} ({other})"
                )
            if {scenario.task, *scenario.needs} <= set(self.grade.tasks):
                self._scenarios[item.nodeid] = scenario
            else:
                deselected.append(item)
        return deselected

    def scenario(self, item: pytest.Item) -> marks.Scenario | None:
        return self._scenarios.get(item.nodeid)

    def will_run(self, items: list[pytest.Item]) -> None:
        """Note the scenarios among pytest's final `items`: any that ends without a result (the
        run was stopped) is graded `not run`, so its points count as lost, not as absent."""
        self._to_run = [item for item in items if item.nodeid in self._scenarios]
        self._left_out = len(self._scenarios) - len(self._to_run)  # -k, -m, --lf deselected them

    # -- the run's time limit --------------------------------------------------------------------

    def limit_run(
        self, session: pytest.Session, seconds: float, within: float | None = None
    ) -> threading.Timer:
        """Stop the run after `seconds` (or `within` seconds from now, what is left of them in
        a process started later): the scenario running then times out, and no other starts.
        The caller cancels the returned timer when the run ends."""

        def expire() -> None:
            self.run_expired = seconds
            session.shouldstop = f"faultfirst: the run's time limit of {seconds:g}s passed"
            if self._stop_current is not None:
                self._stop_current()

        timer = threading.Timer(seconds if within is None else max(0.0, within), expire)
        timer.daemon = True
        timer.start()
        return timer

    def finish(self) -> None:
        """Grade every scenario that was to run and did not as `not run`."""
        graded = {result.scenario.id for result in self.grade.results}
        if self.run_expired is not None:
            reason = (
                f"the run's time limit of {self.run_expired:g}s passed before this scenario ran"
            )
        else:
            reason = "the run was stopped before this scenario ran"
        for item in self._to_run:
            scenario = self._scenarios[item.nodeid]
            if scenario.id not in graded:
                graded.add(scenario.id)
                self.grade.add(ScenarioResult(scenario, Status.NOT_RUN, reason))

    # -- the app under test ----------------------------------------------------------------------

    @contextlib.contextmanager
    def app_for(
        self, run: ScenarioRun, settings: dict[str, str], upcoming: dict[str, str] | None
    ) -> typing.Iterator[RunningApp]:
        """A fresh app for one scenario, stopped when it ends or when its time limit passes
        (which fails the scenario as timed out, and frees it from an app that hangs).
        `upcoming` are the next scenario's settings, if another follows."""
        if self._pool is None:
            self._pool = self._make_pool(self.template)
        pool = self._pool
        app = pool.start(settings, upcoming)
        run.started_at = time.monotonic()
        run.app = app
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
        self._stop_current = expire
        try:
            yield app
        finally:
            self._stop_current = None
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
        if (
            report.when == "teardown"
            or (report.when == "setup" and report.passed)
            or report.skipped
        ):
            return
        if report.passed and not (run is not None and run.timed_out):
            status, reason = Status.PASSED, ""
        else:
            status, reason = classify(call.excinfo, run, self.time_limit, self.run_expired)
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

    def partial(self) -> str | None:
        """A line for a run pytest narrowed: its total is no grade, and must not read as one."""
        if not (self._left_out or self.narrowed):
            return None
        ran = len(self._to_run)
        return (
            f"Only {ran} scenario{'s' if ran != 1 else ''} of these tasks ran (pytest's -k, -m or "
            "--lf chose them): the total counts them alone. Run without those for the whole grade."
        )


def classify(
    excinfo: pytest.ExceptionInfo[BaseException] | None,
    run: ScenarioRun | None,
    limit: float,
    run_limit: float | None = None,
) -> tuple[Status, str]:
    """Why a scenario did not pass: the app's fault (failed, timed out, crashed, did not start)
    or ours."""
    if run is not None and run.timed_out:
        if run_limit is not None:
            return (
                Status.TIMED_OUT,
                f"the run's time limit of {run_limit:g}s passed during this scenario, "
                "so the app was stopped",
            )
        return (
            Status.TIMED_OUT,
            f"the scenario was still running after {limit:g}s, so the app was stopped",
        )
    error = _innermost(excinfo.value) if excinfo is not None else None
    # A connection the app dropped may be seen before its process is seen to end.
    crashed = _exit_reason(run, wait=1.0 if isinstance(error, httpx.TransportError) else 0.0)
    if crashed is not None:
        return Status.APP_CRASHED, crashed
    if error is None:
        return Status.HARNESS_ERROR, "the scenario failed without an exception"
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


def _exit_reason(run: ScenarioRun | None, wait: float) -> str | None:
    """Why the scenario's app process ended on its own, if it did (a thread cannot crash alone)."""
    if run is None or run.app is None:
        return None
    return run.app.exit_reason(wait)


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

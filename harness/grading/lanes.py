"""Scenarios side by side: one grading run's scenarios shared among forked lanes.

Scenarios are independent (each starts an app of its own, and reads the fake provider's ledger for
its own question), and most of their time is waiting on purpose: a model thinking, a backoff, a
deadline. So once pytest has collected them, the run forks a few *lanes*: copies of this process
that have already imported and collected everything, so a lane costs a fork, not an interpreter.
Each lane starts its own fake provider and its own apps, and runs the scenarios it is handed one
after another, through pytest's own protocol (fixtures, setup, call, teardown). When one ends, it
sends back the reports and results, and gets the next scenario: the parent hands them out one at a
time, so a lane given a slow scenario does not hold up the rest.

The parent logs every report as if the scenario had run in it (the terminal, ``--junitxml`` and
other plugins see them all), and adds the results to the grade in the order pytest collected
them, so that the board and the reports come out the same whichever lane ran what.

The lanes are forked before any thread of the run starts (threads do not survive a fork); only
one replacing a lane that died is forked later, beside the run's timer. A lane ignores Ctrl-C:
the parent takes it, stops the lanes, and grades what never ran as ``not run``.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import typing
from dataclasses import dataclass, field

import pytest
from _pytest.runner import runtestprotocol  # as pytest-xdist and pytest-rerunfailures use it

from .results import ScenarioResult, Status
from ..hosting.template import SharedTemplate
from .session import GradingSession

END = -1  # sent instead of a scenario's index: nothing more to run



@dataclass
class _Lane:
    pid: int
    connection: multiprocessing.connection.Connection
    given: collections.deque[int] = field(default_factory=collections.deque)
    ended: bool = False  # it was sent END


def run(
    session: pytest.Session,
    grading: GradingSession,
    count: int,
    *,
    run_limit: float | None,
    before: typing.Callable[[pytest.Item, pytest.Item | None], None],
    private: tuple[int, ...] = (),
    template: SharedTemplate | None = None,
) -> None:
    """Run `session.items`, every one a scenario, in `count` lanes; add their results to the
    grade in collection order. `before(item, upcoming)` is called in the lane before each
    scenario, with the one it runs next. The run's time limit, `run_limit`, is kept by a timer
    in every lane and in this process, all ending at the same moment. `private` are file
    descriptors the lanes close (the grade's channel: only this process sends on it).
    `template`, with a channel for each of the `count` lanes, is where they fork their apps from
    (a lane forked later to replace one that died starts its own)."""
    _hand_over_captured(session.config)
    limit = None if run_limit is None else (run_limit, time.monotonic() + run_limit)
    fork = functools.partial(_fork, session, grading, limit, before, private, template)
    lanes = _Lanes(session, grading, fork)
    timer = None
    try:
        lanes.start(min(count, len(session.items)))
        timer = _limit_run(session, grading, limit)
        lanes.serve()
    except KeyboardInterrupt:
        lanes.stop(signal.SIGTERM)
        raise
    finally:
        for index in sorted(lanes.results):
            for result in lanes.results[index]:
                grading.grade.add(result)
        lanes.stop(signal.SIGKILL)
        if timer is not None:
            timer.cancel()


class _Lanes:
    """The parent's side: which lane has which scenarios, what waits, what came back."""

    def __init__(
        self,
        session: pytest.Session,
        grading: GradingSession,
        fork: typing.Callable[[int | None], _Lane],
    ) -> None:
        self.session, self.grading, self._fork = session, grading, fork
        self.items = session.items
        self.waiting = collections.deque(range(len(self.items)))
        self.results: dict[int, list[ScenarioResult]] = {}
        self.running: dict[multiprocessing.connection.Connection, _Lane] = {}

    def start(self, count: int, *, first: bool = True) -> None:
        """Fork `count` lanes; the `first` ones take the shared template's channels."""
        lanes = [self._fork(index if first else None) for index in range(count)]
        for lane in lanes:
            self.running[lane.connection] = lane
        for _ in range(2):  # the one it runs, and the next, so it knows what follows
            for lane in lanes:
                self._give(lane)

    def serve(self) -> None:
        """Log what the lanes send, and hand each the next scenario, until all have ended."""
        while self.running:
            for connection in multiprocessing.connection.wait(list(self.running)):
                lane = self.running[connection]  # type: ignore[index]
                try:
                    index, reports, finished = lane.connection.recv()
                except (EOFError, ConnectionResetError):  # reset: it ended with an index unread
                    del self.running[lane.connection]
                    self._ended(lane)
                    continue
                lane.given.remove(index)
                self.results[index] = finished
                _log(self.items[index], reports)
                self._give(lane)

    def stop(self, signum: int) -> None:
        for lane in self.running.values():
            try:
                os.kill(lane.pid, signum)
                os.waitpid(lane.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.running.clear()

    def _give(self, lane: _Lane) -> None:
        if lane.ended:
            return
        if self.waiting and not self._stopping:
            index = self.waiting.popleft()
            lane.given.append(index)
        else:
            index, lane.ended = END, True
        try:
            lane.connection.send(index)
        except OSError:
            pass  # it has died: reading its end next puts back what it was given

    @property
    def _stopping(self) -> bool:
        return bool(self.session.shouldstop or self.session.shouldfail)

    def _ended(self, lane: _Lane) -> None:
        """A lane's connection closed. It ended well once it had run all it was given, or once
        the run's time limit stopped it (what it did not run is graded `not run`). A lane that
        failed (a bug of ours, or a thread-mode app that ended the process) leaves the scenario
        it was running a harness error, and the rest of what it was given to another lane: a new
        one if every other was told to end."""
        _, status = os.waitpid(lane.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        given = list(lane.given)
        if code != 0 and given:
            current = given.pop(0)
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"failed ({code})"
            if (scenario := self.grading.scenario(self.items[current])) is not None:
                reason = f"the process running this scenario {how}: a bug in the harness"
                self.results[current] = [ScenarioResult(scenario, Status.HARNESS_ERROR, reason)]
        self.waiting.extendleft(reversed(given))
        taking = [other for other in self.running.values() if not other.ended]
        if self.waiting and not taking and not self._stopping:
            self.start(1, first=False)


def _log(item: pytest.Item, reports: list[dict[str, typing.Any]]) -> None:
    """Tell pytest's reporting plugins about a scenario a lane ran, as its own loop would."""
    hook, config = item.ihook, item.config
    hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for data in reports:
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


# -- in a lane ------------------------------------------------------------------------------------


def _fork(
    session: pytest.Session,
    grading: GradingSession,
    limit: tuple[float, float] | None,
    before: typing.Callable[[pytest.Item, pytest.Item | None], None],
    private: tuple[int, ...],
    template: SharedTemplate | None,
    channel: int | None,
) -> _Lane:
    ours, theirs = multiprocessing.Pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        theirs.close()
        return _Lane(pid, ours)
    code = 1
    try:
        ours.close()
        for fd in private:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if template is not None and channel is not None:
            grading.template = template.take(channel)
        _capture_apart(session.config)
        _lane(session, grading, theirs, limit, before)
        code = 0
    except BaseException as error:  # noqa: BLE001 - a lane must never return into pytest's loop
        print(f"faultfirst: a grading lane failed: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        os._exit(code)


def _lane(
    session: pytest.Session,
    grading: GradingSession,
    connection: multiprocessing.connection.Connection,
    limit: tuple[float, float] | None,
    before: typing.Callable[[pytest.Item, pytest.Item | None], None],
) -> None:
    """Run what the parent hands out, sending back each scenario's reports and results."""
    items, config = session.items, session.config
    given: collections.deque[int] = collections.deque()
    ended = False
    timer = _limit_run(session, grading, limit)
    try:
        while not session.shouldstop:
            while not ended and len(given) < 2:
                index = connection.recv()
                ended = index == END
                if not ended:
                    given.append(index)
            if not given:
                break
            index = given.popleft()
            item, upcoming = items[index], items[given[0]] if given else None
            before(item, upcoming)
            grading.grade.results = []  # the parent merges each scenario's results
            # pytest's own protocol, less the logging: the parent logs the reports
            reports = runtestprotocol(item, log=False, nextitem=upcoming)
            serialized = [
                config.hook.pytest_report_to_serializable(config=config, report=report)
                for report in reports
            ]
            connection.send((index, serialized, grading.grade.results))
    finally:
        if timer is not None:
            timer.cancel()
        grading.close()


def _limit_run(
    session: pytest.Session, grading: GradingSession, limit: tuple[float, float] | None
) -> threading.Timer | None:
    """The run's time limit (seconds, and the monotonic moment they end), for this process:
    a lane forked late, to replace one that died, gets what is left, not a fresh limit."""
    if limit is None:
        return None
    seconds, deadline = limit
    return grading.limit_run(session, seconds, within=deadline - time.monotonic())


def _hand_over_captured(config: pytest.Config) -> None:
    """Show what pytest captured so far (at collection, say) now: the lanes are forked with the
    same capture files, and each empties them when it takes files of its own."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None or not capture.is_globally_capturing():
        return
    out, err = capture.read_global_capture()
    sys.stdout.write(out)
    sys.stderr.write(err)


def _capture_apart(config: pytest.Config) -> None:
    """Give the lane capture files of its own: the ones it was forked with are the parent's,
    and another lane reading them would take this one's output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None or not capture.is_globally_capturing():
        return
    capture.suspend_global_capture(in_=True)
    capture.stop_global_capturing()
    capture.start_global_capturing()
    capture.suspend_global_capture(in_=True)

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

A lane is forked before any thread of the run starts (threads do not survive a fork), and it
ignores Ctrl-C: the parent takes it, stops the lanes, and grades what never ran as ``not run``.
"""

from __future__ import annotations

import collections
import multiprocessing.connection
import os
import signal
import sys
import typing
from dataclasses import dataclass, field

import pytest
from _pytest.runner import runtestprotocol  # as pytest-xdist and pytest-rerunfailures use it

from .results import ScenarioResult, Status
from .session import GradingSession

AUTO_PER_CORE = 2  # lanes per core, for --concurrency auto: see auto()
END = -1  # sent instead of a scenario's index: nothing more to run
STOP_WAIT = 5.0  # seconds a lane has to end once told to, before it is killed


def auto() -> int:
    """The lanes a run uses by default: two per core this process may run on. A scenario
    spends most of its time waiting; measured on two cores, ... (TODO measure)."""
    return AUTO_PER_CORE * len(os.sched_getaffinity(0))


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
) -> None:
    """Run `session.items`, every one a scenario, in `count` lanes; add their results to the
    grade in collection order. `before(item, upcoming)` is called in the lane before each
    scenario, with the one it runs next. The run's time limit, `run_limit`, is kept by a timer in
    every lane and in this process, each started once forked. `private` are file descriptors the
    lanes close (the grade's channel: only this process sends on it)."""
    items = session.items
    waiting = collections.deque(range(len(items)))
    _hand_over_captured(session.config)
    lanes = [
        _fork(session, grading, run_limit, before, private)
        for _ in range(min(count, len(items)))
    ]
    results: dict[int, list[ScenarioResult]] = {}
    timer = grading.limit_run(session, run_limit) if run_limit is not None else None
    try:
        for _ in range(2):  # the one it runs, and the next, so it knows what follows
            for lane in lanes:
                _give(lane, waiting, session)
        _serve(session, grading, lanes, waiting, results)
    except KeyboardInterrupt:
        _stop(lanes, signal.SIGTERM)
        raise
    finally:
        for index in sorted(results):
            for result in results[index]:
                grading.grade.add(result)
        _stop(lanes, signal.SIGKILL)
        if timer is not None:
            timer.cancel()


def _serve(
    session: pytest.Session,
    grading: GradingSession,
    lanes: list[_Lane],
    waiting: collections.deque[int],
    results: dict[int, list[ScenarioResult]],
) -> None:
    """Log what the lanes send, and hand each the next scenario, until all have ended."""
    items = session.items
    running = {lane.connection: lane for lane in lanes}
    while running:
        for connection in multiprocessing.connection.wait(list(running)):
            lane = running[connection]  # type: ignore[index]
            try:
                index, reports, finished = connection.recv()  # type: ignore[union-attr]
            except (EOFError, ConnectionResetError):  # reset: it ended with an index unread
                del running[connection]  # type: ignore[arg-type]
                _lane_ended(lane, grading, items, waiting, results)
                continue
            lane.given.remove(index)
            results[index] = finished
            _log(items[index], reports)
            _give(lane, waiting, session)


def _give(lane: _Lane, waiting: collections.deque[int], session: pytest.Session) -> None:
    if lane.ended:
        return
    if waiting and not (session.shouldstop or session.shouldfail):
        index = waiting.popleft()
        lane.given.append(index)
        lane.connection.send(index)
    else:
        lane.ended = True
        lane.connection.send(END)


def _lane_ended(
    lane: _Lane,
    grading: GradingSession,
    items: list[pytest.Item],
    waiting: collections.deque[int],
    results: dict[int, list[ScenarioResult]],
) -> None:
    """A lane's connection closed. It ended well once it had run all it was given, or once the
    run's time limit stopped it; what it did not run goes back to the others (who will not run
    it either, past the limit: it is graded `not run`). A lane that failed (a bug of ours, or a
    thread-mode app that ended the process) leaves the scenario it was running a harness error."""
    _, status = os.waitpid(lane.pid, 0)
    lane.pid = 0
    code = os.waitstatus_to_exitcode(status)
    given = list(lane.given)
    lane.given.clear()
    if code != 0 and given:
        current = given.pop(0)
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"failed ({code})"
        scenario = grading.scenario(items[current])
        if scenario is not None:
            reason = f"the process running this scenario {how}: a bug in the harness"
            results[current] = [ScenarioResult(scenario, Status.HARNESS_ERROR, reason)]
    waiting.extendleft(reversed(given))


def _log(item: pytest.Item, reports: list[dict[str, typing.Any]]) -> None:
    """Tell pytest's reporting plugins about a scenario a lane ran, as its own loop would."""
    hook, config = item.ihook, item.config
    hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for data in reports:
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _stop(lanes: list[_Lane], signum: int) -> None:
    for lane in lanes:
        if lane.pid:
            try:
                os.kill(lane.pid, signum)
                os.waitpid(lane.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            lane.pid = 0


# -- in a lane ------------------------------------------------------------------------------------


def _fork(
    session: pytest.Session,
    grading: GradingSession,
    run_limit: float | None,
    before: typing.Callable[[pytest.Item, pytest.Item | None], None],
    private: tuple[int, ...],
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
        _capture_apart(session.config)
        _lane(session, grading, theirs, run_limit, before)
        code = 0
    except BaseException as error:  # noqa: BLE001 - a lane must never return into pytest's loop
        print(f"faultfirst: a grading lane failed: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        os._exit(code)


def _lane(
    session: pytest.Session,
    grading: GradingSession,
    connection: multiprocessing.connection.Connection,
    run_limit: float | None,
    before: typing.Callable[[pytest.Item, pytest.Item | None], None],
) -> None:
    """Run what the parent hands out, sending back each scenario's reports and results."""
    items, config = session.items, session.config
    given: collections.deque[int] = collections.deque()
    ended = False
    timer = grading.limit_run(session, run_limit) if run_limit is not None else None
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

"""`faultfirst play`: the app against the fake provider, and what happens, in time order.

Three sources make lines, each marked with whose it is: the app's own output (``app``), the users
who leave before their answer ended (``user``, noticed by `harness.hosting.departures`), and
the provider's calls as they start and as they end (``llm``, read from the fake's ledger). They
come from other threads, or are read from the ledger a moment after they happened, so `Feed`
holds each line `HOLD` seconds and prints them sorted by when they happened: the terminal reads
as one timeline. A line later than that (a machine so busy that a thread waited half a second)
is shown at the time of the line before it, never before it. Whatever the app wrote is cleaned
as the grader cleans it (`sanitize.clean`) before it reaches the terminal.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

from .. import vocabulary
from ..fake_llm import PROFILES, Call, FakeLLM
from ..grading import sanitize
from ..hosting.departures import Departure, Observer
from ..hosting.launcher import AppDidNotStart, AppProcess
from .foreground import run_until_stopped

HOLD = 0.5  # seconds a line waits for an earlier one still on its way (a poll, a pipe, a thread)
TICK = 0.1  # seconds between looks at the ledger

APP, USER, LLM = "app", "user", "llm"


def add_command(commands: typing.Any) -> None:
    """Add ``play`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "play",
        help="run the app against the fake provider, and watch what it does under faults",
        description="Start the fake LLM provider and the app, print the page's address, then "
        "print what happens, in time order, each line marked with whose it is: 'app' for what "
        "the app prints (its log, a traceback), 'user' for a user who left before their answer "
        "ended, 'llm' for each call the app makes to the provider, when it starts (model, "
        "fault injected) and when it ends (status, tokens, or that the app hung up). "
        "Ctrl-C stops both.",
    )
    command.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=vocabulary.PROFILE,
        help="how the provider behaves, see 'faultfirst fake-llm --help' "
        f"(default: {vocabulary.PROFILE})",
    )
    submission = command.add_argument(
        "--submission",
        dest="app",  # its name before the rename (--app), which run reads
        type=Path,
        default=Path(vocabulary.SUBMISSION),
        metavar="DIR",
        help="the folder holding exercise_app/ (default: the current folder)",
    )
    vocabulary.add_old_names(command, submission, vocabulary.OLD_PLAY_NAMES)
    command.add_argument(
        "--port", type=int, default=0, help="the app's port (default: 0, a free one)"
    )
    vocabulary.add_seed(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fake = FakeLLM(seed=args.seed, profile=args.profile)
    fake.start()
    # Only where the provider is: the app's own defaults for timeouts and retries are what a
    # person should watch at work here, not the short ones the scenarios use.
    settings = {
        "LLM_BASE_URL": fake.base_url,
        "PRIMARY_MODEL": fake.models[0],
        "FALLBACK_MODEL": fake.models[1],
    }
    feed = Feed(fake.ledger.started_at, lambda line: print(line, flush=True))
    app = AppProcess(args.app, settings, port=args.port, observer=observer(feed))
    try:
        app.start()
    except (AppDidNotStart, OSError) as exc:
        app.stop()
        fake.stop()
        print(f"faultfirst play: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the app starts: it runs in a session of its own
        app.stop()
        fake.stop()
        print("stopped.")
        return 130
    print(f"faultfirst play — the app in {app.folder}, the provider's profile {args.profile}")
    print(f"  open      {app.url}/")
    print(f"  provider  {fake.base_url} ({', '.join(fake.models)}; the first is PRIMARY_MODEL)")
    print(
        "What happens, in time order: 'app' what your app prints, 'user' a user leaving before "
        "their answer ended, 'llm' each call to the provider as it starts and as it ends. "
        "Ctrl-C stops.",
        flush=True,
    )
    return run_until_stopped(lambda until: follow(fake, feed, until), fake, app)


@dataclass(order=True)
class Line:
    at: float  # `time.monotonic()`
    order: int  # of arrival: keeps lines of the same moment as they came
    who: str
    text: str


class Feed:
    """Lines from any thread, printed (`flush`) in the order they happened, each with its time
    since `origin` and whose it is."""

    def __init__(self, origin: float, write: typing.Callable[[str], None]) -> None:
        self.origin = origin
        self._write = write
        self._lock = threading.Lock()
        self._pending: list[Line] = []
        self._arrived = 0
        self._shown = -math.inf  # the time of the last line printed

    def add(self, at: float, who: str, text: str) -> None:
        line = sanitize.clean(text).replace("\n", " ")
        with self._lock:
            self._arrived += 1
            self._pending.append(Line(at, self._arrived, who, line))

    def flush(self, until: float = math.inf) -> None:
        """Print the lines that happened at or before `until`, oldest first."""
        with self._lock:
            due = sorted(line for line in self._pending if line.at <= until)
            self._pending = [line for line in self._pending if line.at > until]
        for line in due:
            self._shown = max(self._shown, line.at)
            self._write(f"{self._shown - self.origin:8.2f}s  {line.who:<4}  {line.text}")


class CallLines:
    """The provider's calls as lines in a `Feed`: one when a call starts, one when it ends."""

    def __init__(self, fake: FakeLLM, feed: Feed) -> None:
        self._ledger = fake.ledger
        self._feed = feed
        self._seen = 0  # how many calls have had their first line
        self._done = 0  # how many, from the first on, have had both
        self._ended: set[int] = set()  # the calls after those that have had both

    def poll(self) -> None:
        """Add the lines of what happened since the last poll (only the calls not done with are
        copied from the ledger: a long session has thousands)."""
        calls = self._ledger.calls_from(self._done)
        for index, call in enumerate(calls, start=self._done):
            if index >= self._seen:
                self._seen = index + 1
                self._feed.add(call.received_at, LLM, call_started(call))
            if call.ended_at is not None and call.id not in self._ended:
                self._ended.add(call.id)
                self._feed.add(call.ended_at, LLM, call_ended(call))
        for call in calls:
            if call.ended_at is None:
                break
            self._done += 1
            self._ended.discard(call.id)


def follow(fake: FakeLLM, feed: Feed, until: list[int]) -> None:
    """Print what happens until `until` holds a signal, then the lines still held."""
    calls = CallLines(fake, feed)
    while not until:
        time.sleep(TICK)
        calls.poll()
        feed.flush(until=time.monotonic() - HOLD)
    calls.poll()
    feed.flush()


def _call(call: Call) -> str:
    mode = "stream" if call.stream else "json"
    return f"#{call.id:<4} {call.model:<12} {mode:<6}"


def call_started(call: Call) -> str:
    """E.g. ``#4    fake-large   stream starts (fault: error 503)``."""
    return f"{_call(call)} starts (fault: {call.fault})"


def call_ended(call: Call) -> str:
    """E.g. ``#4    fake-large   stream -> 200 completed, 48 tokens in 1.52s``, or, for a call
    the app left before its end, ``... -> the app hung up after 12 tokens, 0.80s in``."""
    took = (call.ended_at or call.received_at) - call.received_at
    if call.disconnected:
        status = "no status yet" if call.status is None else f"status {call.status}"
        hung_up = f"the app hung up after {call.tokens} tokens, {took:.2f}s in ({status})"
        return f"{_call(call)} -> {hung_up}"
    status = "---" if call.status is None else call.status
    return f"{_call(call)} -> {status} {call.outcome}, {call.tokens} tokens in {took:.2f}s"


def departed(departure: Departure) -> str:
    """E.g. ``left POST /api/answer/stream 0.80s after asking, before the response ended (status
    200 sent)``."""
    if departure.status is None:
        before = "before any response"
    else:
        before = f"before the response ended (status {departure.status} sent)"
    return f"left {departure.method} {departure.path} {departure.after:.2f}s after asking, {before}"


def observer(feed: Feed) -> Observer:
    """What the app's launcher tells `feed`: each line the app prints, each user who leaves."""

    def printed(line: str) -> None:
        feed.add(time.monotonic(), APP, line)

    def left(departure: Departure) -> None:
        # The app's process noted the moment on the machine's one monotonic clock; never later
        # than now, whatever the app itself might write on that pipe.
        feed.add(min(departure.at, time.monotonic()), USER, departed(departure))

    return Observer(printed, left)

"""Commands that serve until Ctrl-C: `fake-llm` and `play`."""

from __future__ import annotations

import signal
import typing

from ..fake_llm import FakeLLM
from ..hosting.launcher import AppProcess


def run_until_stopped(
    follow: typing.Callable[[list[int]], None], fake: FakeLLM, app: AppProcess | None = None
) -> int:
    """`follow` until Ctrl-C (or SIGTERM) lands in the list it is given, then stop the app and
    the fake.

    The signals only note themselves in a list: an exception raised wherever the main thread
    happens to be (say, holding the ledger's lock) could leave the server unable to stop, and a
    handler taking a lock (`threading.Event.set`) deadlocks when the signal lands while the main
    thread holds that same lock."""
    stop_signals: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: stop_signals.append(signum))
    try:
        follow(stop_signals)
    finally:
        if app is not None:
            app.stop()
        fake.stop()
    print("stopped.")
    return 0

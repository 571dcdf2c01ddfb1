"""One timer per tick for every stream the fake is playing.

At 200 concurrent streams the fake sends 10,000 tokens a second. With a timer per token, each token
woke the event loop on its own and then its stream's coroutine, down the whole ASGI call chain:
most of the server's CPU per token. The pacer groups due moments into ticks of `TICK` seconds
and runs, from a single timer per tick, a plain callback per stream (see `Playback`'s token
sending), so a token costs no wake-up of its own.

A callback runs at the first tick at or after its moment, never before: a token is at most one
tick later than it would be with its own timer. asyncio's epoll selector waits in whole
milliseconds anyway, so a 1 ms tick costs the fake's pacing next to nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
import typing

TICK = 0.001  # seconds

Callback = typing.Callable[[], None]


class Pacer:
    """Runs callbacks on the running event loop at given `time.monotonic()` moments, rounded up
    to the next tick. Only for the loop's own thread; the fake has one per server."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self._ticks: dict[int, list[Callback]] = {}

    def call_at(self, moment: float, callback: Callback) -> None:
        """Run `callback` at the first tick at or after `moment` (a moment past: the next tick
        the loop gets to, as ``asyncio.sleep(0)`` would)."""
        tick = math.ceil(moment / self.tick)
        callbacks = self._ticks.get(tick)
        if callbacks is None:
            callbacks = self._ticks[tick] = []
            # Relative to time.monotonic(), the fake's clock, whatever clock the loop keeps.
            delay = max(0.0, tick * self.tick - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._run_tick, tick)
        callbacks.append(callback)

    def _run_tick(self, tick: int) -> None:
        # Popped first: a callback that asks for a moment already past starts a new list, run on
        # the loop's next iteration rather than in this one (a stream of tokens without delay
        # must let the loop serve others between two tokens).
        for callback in self._ticks.pop(tick):
            try:
                callback()
            except Exception as exc:  # one stream's bug must not stop the others' tokens
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "a paced callback failed", "exception": exc}
                )

    def __len__(self) -> int:
        """How many callbacks wait (for tests)."""
        return sum(len(callbacks) for callbacks in self._ticks.values())

"""The ledger: what the fake provider saw and did, request by request.

The server thread writes it while tests read it from another thread, so every read returns copies
taken under a lock: a test never sees a call half-updated. Times are `time.monotonic()` seconds,
comparable with the test's own clock; `to_json` turns them into seconds since the ledger started.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import typing
from dataclasses import dataclass, field

import anyio


@dataclass
class Call:
    """One request to the fake provider and what became of it."""

    id: int
    model: str
    stream: bool
    prompt: str
    fault: str
    received_at: float
    status: int | None = None
    headers_at: float | None = None
    token_times: list[float] = field(default_factory=list)
    ended_at: float | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    text: str = ""
    outcome: str = "in progress"
    disconnected_at: float | None = None
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def disconnected(self) -> bool:
        """The client went away before the response was complete."""
        return self.disconnected_at is not None

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    @property
    def first_token_at(self) -> float | None:
        return self.token_times[0] if self.token_times else None

    def tokens_after(self, moment: float) -> int:
        """Tokens generated (and billed) after `moment`, e.g. after the user closed the tab."""
        return sum(1 for t in self.token_times if t > moment)

    def copy(self) -> Call:
        return dataclasses.replace(
            self, token_times=list(self.token_times), request_headers=dict(self.request_headers)
        )


def peak_concurrency(calls: typing.Iterable[Call]) -> int:
    """The most of `calls` in flight at one moment, each from its arrival to its end (a call
    still going counts as in flight).

    A call's end is recorded before its last byte leaves, so a client that waits for one answer
    before it sends the next request never has two calls in flight here.
    """
    changes = []
    for call in calls:
        changes.append((call.received_at, 1))
        changes.append((math.inf if call.ended_at is None else call.ended_at, -1))
    peak = in_flight = 0
    for _, change in sorted(changes):  # at the same moment, an end comes before a start
        in_flight += change
        peak = max(peak, in_flight)
    return peak


class Ledger:
    """A thread-safe list of `Call`s with helpers to wait for what a test expects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._next_id = 1
        self.started_at = time.monotonic()
        self.started_wall = time.time()

    def open(self, *, received_at: float | None = None, **fields: typing.Any) -> Call:
        """Record a new request; the server keeps the returned call and updates it in place."""
        with self._lock:
            when = time.monotonic() if received_at is None else received_at
            call = Call(id=self._next_id, received_at=when, **fields)
            self._next_id += 1
            self._calls.append(call)
            return call

    def update(self, call: Call, **fields: typing.Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(call, name, value)

    def add_token(self, call: Call, token: str) -> float:
        with self._lock:
            now = time.monotonic()
            call.token_times.append(now)
            call.tokens += 1
            call.text += token
            return now

    def clear(self) -> None:
        with self._lock:
            self._calls = []

    def calls(self, model: str | None = None) -> list[Call]:
        """Copies of the calls so far, oldest first, optionally of one model."""
        with self._lock:
            return [c.copy() for c in self._calls if model is None or c.model == model]

    def calls_from(self, index: int) -> list[Call]:
        """Copies of the calls from the `index`-th on (0: all), oldest first: for a reader that
        follows the ledger as it grows, and has no need of copies of the calls it is done with."""
        with self._lock:
            return [c.copy() for c in self._calls[index:]]

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    @property
    def tokens_billed(self) -> int:
        with self._lock:
            return sum(c.tokens for c in self._calls)

    async def wait_for(
        self,
        condition: typing.Callable[[list[Call]], bool],
        *,
        timeout: float = 5.0,
        what: str = "the expected calls",
    ) -> list[Call]:
        """Wait until `condition(calls)` holds and return those calls, or raise `TimeoutError`."""
        deadline = time.monotonic() + timeout
        while (calls := self._poll(condition, deadline, timeout, what)) is None:
            await anyio.sleep(0.002)
        return calls

    async def settled(self, *, timeout: float = 5.0) -> list[Call]:
        """The calls once there is at least one and every one has ended."""
        return await self.wait_for(
            lambda calls: bool(calls) and all(call.finished for call in calls),
            timeout=timeout,
            what="the app's calls to end",
        )

    async def only_call(self, *, timeout: float = 5.0) -> Call:
        """The single call a scenario expects, once it has ended; a failed scenario (an
        AssertionError) if the app made more."""
        calls = await self.settled(timeout=timeout)
        assert len(calls) == 1, (
            f"one request should take one call to the model; the app made {len(calls)}: "
            f"{self.summary()}"
        )
        return calls[0]

    def wait_for_sync(
        self,
        condition: typing.Callable[[list[Call]], bool],
        *,
        timeout: float = 5.0,
        what: str = "the expected calls",
    ) -> list[Call]:
        """`wait_for` for synchronous code (blocks the calling thread, never the server)."""
        deadline = time.monotonic() + timeout
        while (calls := self._poll(condition, deadline, timeout, what)) is None:
            time.sleep(0.002)
        return calls

    def _poll(
        self,
        condition: typing.Callable[[list[Call]], bool],
        deadline: float,
        timeout: float,
        what: str,
    ) -> list[Call] | None:
        calls = self.calls()
        if condition(calls):
            return calls
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}; the ledger has: {self.summary()}")
        return None

    def summary(self) -> str:
        calls = self.calls()
        if not calls:
            return "no calls"
        return "; ".join(
            f"#{c.id} {c.model} {c.fault} -> {c.status} {c.outcome}, {c.tokens} tokens"
            for c in calls
        )

    def to_json(self) -> dict[str, typing.Any]:
        """The ledger as JSON data, times in seconds since it started."""
        return {
            "started_at": self.started_wall,
            "calls": [self._call_json(c) for c in self.calls()],
        }

    def _call_json(self, call: Call) -> dict[str, typing.Any]:
        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - self.started_at, 6)

        data = dataclasses.asdict(call)
        for name in ("received_at", "headers_at", "ended_at", "disconnected_at"):
            data[name] = rel(data[name])
        data["token_times"] = [rel(t) for t in call.token_times]
        data["disconnected"] = call.disconnected
        return data

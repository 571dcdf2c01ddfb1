"""A circuit breaker: stop calling a primary model that keeps failing, for a while.

While a provider is down, every request would otherwise spend its retries, and most of its
deadline, on the primary before it reaches the fallback model; and the retries add load to a
provider that is struggling to come back. After enough failures in a row the breaker sends
requests straight to the fallback, then lets one request through now and then to see whether the
primary is back.
"""

from __future__ import annotations

import time


class CircuitBreaker:
    """Closed (the primary is called), open (it is not), or half-open (one request tries it).

    It opens after `failures_to_open` transient failures of the primary in a row, whatever
    requests they were in (BREAKER_FAILURES), and keeps it alone for `cool_down` seconds
    (BREAKER_COOL_DOWN). Only transient failures count (see `retry.is_transient`): a rejected
    request says nothing about whether the model is up. One instance per app, shared by all its
    requests.
    """

    def __init__(self, failures_to_open: int, cool_down: float) -> None:
        self._failures_to_open = failures_to_open
        self._cool_down = cool_down
        self._failures = 0  # transient failures in a row since the primary last answered
        self._open_until: float | None = None  # time.monotonic(); None while closed

    def allows_call(self) -> bool:
        """Whether this request may call the primary model.

        Once the cool-down is over, the first request to ask is the one that tries the primary
        (half-open); the others keep going to the fallback for another cool-down, so that a
        primary still down costs one request its retries, not every request.
        """
        if self._open_until is None:
            return True
        now = time.monotonic()
        if now < self._open_until:
            return False
        self._open_until = now + self._cool_down
        return True

    def succeeded(self) -> None:
        """The primary answered: it is up, so the breaker closes and the count starts over."""
        self._failures = 0
        self._open_until = None

    def failed(self) -> None:
        """The primary failed transiently: open (or reopen) once there were enough in a row."""
        self._failures += 1
        if self._failures >= self._failures_to_open:
            self._open_until = time.monotonic() + self._cool_down

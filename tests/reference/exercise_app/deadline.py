"""The deadline of one user request, every attempt and the fallback included."""

from __future__ import annotations

import contextlib
import time
import typing
from dataclasses import dataclass

import anyio

from .errors import DeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() seconds, the clock anyio's asyncio backend runs on

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @contextlib.contextmanager
    def enforced(self) -> typing.Iterator[None]:
        """Cancel the work inside when the deadline passes, and raise `DeadlineExceeded`.

        httpx's timeouts cannot do this: its read timeout bounds each chunk, so an upstream that
        drips a byte at a time, or streams forever, never trips it.
        """
        try:
            with anyio.fail_after(self.remaining()):
                yield
        except TimeoutError:
            raise DeadlineExceeded("The model took too long to answer.") from None

"""One LLM call for everyone asking the same question at the same time.

Two tabs asking the same question share one in-flight call instead of paying for two. The call
counts the people waiting for it: one of them leaving does not cancel the answer the others still
wait for, but the last one leaving does, so no call runs on for nobody.
"""

from __future__ import annotations

import asyncio
import functools
import typing
from dataclasses import dataclass

T = typing.TypeVar("T")


@dataclass
class _Call(typing.Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 0


class SharedCalls(typing.Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, _Call[T]] = {}

    async def run(
        self, key: str, start: typing.Callable[[], typing.Coroutine[typing.Any, typing.Any, T]]
    ) -> T:
        """Wait for the call running for `key`, starting it with `start()` if there is none."""
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(asyncio.create_task(start()))
            call.task.add_done_callback(functools.partial(self._forget, key, call))
        call.waiters += 1
        try:
            # Shielded: one waiter being cancelled must not cancel the call the others share.
            return await asyncio.shield(call.task)
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                self._forget(key, call)  # whoever asks next starts afresh, not a cancelled call
                call.task.cancel()

    def _forget(self, key: str, call: _Call[T], *_: object) -> None:
        if self._calls.get(key) is call:
            del self._calls[key]

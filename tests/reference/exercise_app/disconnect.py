"""Stop working for a client that has gone away.

Starlette cancels a streaming response when its client disconnects, but not a plain handler: one
awaiting a slow LLM call runs it to the end, and the provider bills the answer, after the user
closed the tab. So the JSON endpoint watches for the disconnect itself.
"""

from __future__ import annotations

import asyncio
import typing

import anyio
from starlette.requests import Request

T = typing.TypeVar("T")


async def cancel_on_disconnect(
    request: Request, work: typing.Callable[[], typing.Awaitable[T]]
) -> T | None:
    """Return what `work()` returns, or None once the client has gone (the work is cancelled).

    A watcher task plus a cancel scope rather than a task group: a task group would wrap the
    work's own errors in an ExceptionGroup, and the handler wants them as they are.
    """
    with anyio.CancelScope() as scope:
        watcher = asyncio.create_task(_cancel_when_gone(request, scope))
        try:
            return await work()
        finally:
            watcher.cancel()
    return None


async def _cancel_when_gone(request: Request, scope: anyio.CancelScope) -> None:
    # The body is read by now, so the next message the server has for us is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    scope.cancel()

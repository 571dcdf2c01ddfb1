"""The answer as Server-Sent Events: ``token`` events as the model writes, then ``done`` with who
answered, or ``error``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing

from starlette.responses import StreamingResponse

from .errors import AnswerError
from .fallback import Served

Events = typing.AsyncGenerator["str | Served", None]


def event_stream(events: Events) -> StreamingResponse:
    """Stream `events` (pieces of text, then one `Served`) to the client as they come.

    When the client goes away, Starlette cancels the task iterating this response, and with it the
    upstream call `events` is reading: nothing more is generated, or billed.
    """
    return StreamingResponse(
        _encoded(events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy buffering
    )


async def _encoded(events: Events) -> typing.AsyncIterator[str]:
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, Served):
                    yield _event("done", dataclasses.asdict(event))
                else:
                    yield _event("token", {"text": event})
        except AnswerError as error:
            yield _event("error", error.to_json())


def _event(name: str, data: dict[str, typing.Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"

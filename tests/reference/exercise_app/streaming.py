"""The answer as Server-Sent Events: ``token`` events as the model writes, then ``done`` with its
metadata, or ``error``."""

from __future__ import annotations

import contextlib
import json
import typing

from starlette.responses import StreamingResponse

from .answers import Metadata
from .errors import AnswerError

Events = typing.AsyncGenerator["str | Metadata", None]


def event_stream(events: Events, request_id: str) -> StreamingResponse:
    """Stream `events` (pieces of text, then one `Metadata`) to the client as they come.

    When the client goes away, Starlette cancels the task iterating this response, and with it the
    upstream call `events` is reading: nothing more is generated, or billed.
    """
    return StreamingResponse(
        _encoded(events, request_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy buffering
    )


async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, Metadata):
                    yield _event("done", {**event.to_json(), "request_id": request_id})
                else:
                    yield _event("token", {"text": event})
        except AnswerError as error:
            yield _event("error", error.to_json())


def _event(name: str, data: dict[str, typing.Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"

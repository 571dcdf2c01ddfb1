"""A request id for every request, so a user's "it failed just now" can be found in the logs.

The id is the client's own ``X-Request-ID`` when it sent a sensible one (a proxy or the page may
have set it already), a new one otherwise. Every response carries it back in the same header,
errors included (they are the ones people ask about), and handlers read it from
``request.state.request_id`` to put it in the answer's metadata.

Plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``, which would stand between
a streaming response and its client and hide the client's disconnect from the handler.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_SENSIBLE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces, not too long


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER, "")
        request_id = given if _SENSIBLE.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)

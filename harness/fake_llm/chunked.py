"""Writing a streamed response's chunks straight to its connection, past ASGI.

An ASGI body message goes through Starlette's two send wrappers, uvicorn's `send` and h11's
state machine before its bytes reach the socket: about a fifth of the fake's CPU per streamed
token. The pacer sends tokens from a plain callback, which cannot await `send` anyway. So a
stream's token chunks are written to the transport, framed exactly as uvicorn frames a body
message of a chunked HTTP/1.1 response (h11's `ChunkedWriter`, and uvicorn's httptools
protocol alike): the size in hex, CRLF, the bytes, CRLF.

Only where that framing is certain (`ChunkWriter.for_response`), and only while the connection
is idle (`ready`): a client slow to read has bytes queued, and then the token goes through
`send`, which applies uvicorn's back-pressure. The start of the response and its end always go
through `send`, so uvicorn and h11 see a whole response.
"""

from __future__ import annotations

import asyncio
import typing

# uvicorn's HTTP/1.1 protocols, whose chunked framing this module repeats.
_UVICORN_PROTOCOLS = ("uvicorn.protocols.http.h11_impl", "uvicorn.protocols.http.httptools_impl")


class ChunkWriter:
    """Writes body chunks of one chunked HTTP/1.1 response to its transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    @classmethod
    def for_response(
        cls,
        transport: asyncio.Transport | None,
        scope: typing.Mapping[str, typing.Any],
        headers: typing.Iterable[str],
    ) -> ChunkWriter | None:
        """A writer for the response on `transport`, or None where its body may not be chunked
        (an HTTP/1.0 client, a length among the response's `headers`) or uvicorn is not the
        server whose framing this repeats."""
        if transport is None or scope.get("http_version") != "1.1":
            return None
        if {name.lower() for name in headers} & {"content-length", "transfer-encoding"}:
            return None
        protocol = transport.get_protocol()
        if type(protocol).__module__ not in _UVICORN_PROTOCOLS:
            return None
        return cls(transport)

    def ready(self) -> bool:
        """Whether a chunk can go now: the connection open and nothing queued before it."""
        return not self._transport.is_closing() and not self._transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        """One chunk; never an empty one, which would end the body."""
        assert data, "an empty chunk ends a chunked body"
        self._transport.write(b"%x\r\n%b\r\n" % (len(data), data))

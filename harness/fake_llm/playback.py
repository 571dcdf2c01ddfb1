"""Playing one fault as one HTTP response.

`Playback` is an ASGI response. While it plays, a second task waits on `receive()`: uvicorn answers
it with ``http.disconnect`` when the client closes the connection, which is how the fake notices a
client leave while it is still "thinking" (no byte sent yet) as well as mid-stream. Tokens are
scheduled against the clock from the start of the response, not from the previous token, so a
loaded machine delays a token without delaying every token after it.

A stream's tokens are sent by the server's `Pacer`, from one timer per millisecond for all
streams, and written straight to the connection (`ChunkWriter`): waking each stream's coroutine
and sending each token through ASGI was most of the fake's CPU per token. The coroutine takes a
token back (`_send_token`) whenever that shortcut does not apply: faults that shape the body (a
drip, a malformed chunk), a client that is slow to read or gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import random
import socket
import struct
import time
import typing
from dataclasses import dataclass

import anyio

from . import wire
from .chunked import ChunkWriter
from .faults import Fault
from .ledger import Call, Ledger
from .pacer import Pacer

Scope = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[typing.MutableMapping[str, typing.Any]]]
Send = typing.Callable[[typing.MutableMapping[str, typing.Any]], typing.Awaitable[None]]
TransportFinder = typing.Callable[[typing.Any], "asyncio.Transport | None"]

DRIP_INTERVAL = 0.05  # a dripping response sends a piece this often (seconds)

# anyio loads its asyncio backend (and most of itself) on first use, ~20 ms: load it with the fake,
# not inside the first request, whose timing a test may be measuring. Only a warm-up: if anyio
# moves the module, the first request is merely slower.
with contextlib.suppress(ImportError):
    importlib.import_module("anyio._backends._asyncio")


@dataclass
class Request:
    """What the playback needs to know of the request it answers."""

    id: str
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_tokens: int
    answer: list[str]


class Playback:
    """The ASGI response that plays `fault` for `request`, recording everything in `ledger`."""

    def __init__(
        self,
        *,
        request: Request,
        fault: Fault,
        rng: random.Random,
        call: Call,
        ledger: Ledger,
        inflight: Inflight,
        pacer: Pacer,
        find_transport: TransportFinder | None,
    ) -> None:
        self.request = request
        self.fault = fault
        self.rng = rng
        self.call = call
        self.ledger = ledger
        self.inflight = inflight
        self.pacer = pacer
        self.find_transport = find_transport
        self.created = int(time.time())
        self.start = time.monotonic()
        self.next_token_at = self.start
        self.finished = False  # a close after the last byte is no "disconnect"
        self._token_frame: tuple[bytes, bytes] | None = None  # see _token_chunk
        # While the pacer sends this stream's tokens (_pace_tokens): the writer it sends them
        # with, how many to send, and the future that hands the stream back to the coroutine.
        self._writer: ChunkWriter | None = None
        self._count: int | None = None
        self._handback: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        try:
            with anyio.CancelScope() as abort_scope:
                self.inflight.add(abort_scope)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._watch_disconnect, receive, tasks.cancel_scope)
                    await self._play(send)
                    tasks.cancel_scope.cancel()
            # An abort that lands after the last byte (a reset() racing the end of a response)
            # must not close the connection: a keep-alive client may already reuse it.
            if abort_scope.cancelled_caught and not self.call.disconnected and not self.finished:
                await self._drop_connection(reset=False, outcome="aborted")
        finally:
            self.inflight.discard(abort_scope)
            if not self.finished:
                self._finish("disconnected" if self.call.disconnected else "aborted")

    def _finish(self, outcome: str) -> None:
        """Record the end before the last byte leaves, so a client never sees it before the ledger."""
        self.finished = True
        self.ledger.update(self.call, ended_at=time.monotonic(), outcome=outcome)

    async def _watch_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.finished:
            self.ledger.update(self.call, disconnected_at=time.monotonic())
            scope.cancel()

    # -- the play --------------------------------------------------------------------------------

    async def _play(self, send: Send) -> None:
        fault = self.fault
        await self._sleep_until(self.start + fault.latency)
        self.next_token_at = time.monotonic() + fault.first_token
        if fault.kind == "hang":
            await anyio.sleep_forever()
        if fault.kind == "reset" and fault.after_tokens == 0:
            await self._close(reset=True)
        elif fault.kind == "error" and fault.after_tokens is None:
            await self._send_error(send)
        elif self.request.stream:
            await self._stream(send)
        else:
            await self._respond(send)

    async def _stream(self, send: Send) -> None:
        fault, request = self.fault, self.request
        await self._start(send, 200, "text/event-stream; charset=utf-8")
        await self._body(send, self._chunk({"role": "assistant", "content": ""}))
        count, finish = self._planned_tokens()
        await self._send_tokens(send, count)
        if fault.kind in ("stall", "reset", "cut", "error"):
            await self._end_stream_badly(send)
            return
        await self._body(send, self._chunk({}, finish_reason=finish))
        if request.include_usage:
            await self._body(send, self._chunk(None))
        await self._body(send, wire.sse("[DONE]"), more=False)

    async def _end_stream_badly(self, send: Send) -> None:
        kind = self.fault.kind
        if kind == "stall":
            await anyio.sleep_forever()
        elif kind == "reset":
            await self._close(reset=True)
        elif kind == "error":
            error = wire.error_body(self.fault.status, self.fault.message)
            await self._body(send, wire.sse(error), more=False)
        else:  # cut: a clean end of the HTTP response, but no finish chunk and no [DONE]
            await self._body(send, b"", more=False, outcome="cut")

    async def _respond(self, send: Send) -> None:
        fault = self.fault
        count, finish = self._planned_tokens()
        if fault.kind == "stall":
            await self._start(send, 200, "application/json")
        for token in self._tokens(count):
            await self._next_token(token)
        if fault.kind == "stall":
            await anyio.sleep_forever()
        if fault.kind == "reset":
            await self._close(reset=True)
            return
        if fault.kind == "error":
            await self._send_error(send)
            return
        body = json.dumps(self._completion(finish)).encode()
        if fault.kind == "malformed":
            body = body[: len(body) // 2]
        await self._start(send, 200, "application/json", length=len(body))
        if fault.kind == "cut":
            await self._body(send, body[: len(body) // 2])
            await self._close(reset=False)
        else:
            await self._body(send, body, more=False)

    # -- tokens ----------------------------------------------------------------------------------

    def _planned_tokens(self) -> tuple[int | None, str]:
        """How many tokens to generate (None: without end) and the finish reason after them."""
        fault, request = self.fault, self.request
        if fault.kind == "endless":
            return None, "stop"
        count, finish = len(request.answer), "stop"
        if fault.kind in ("length", "error", "reset", "stall", "cut") and fault.after_tokens is not None:
            count = fault.after_tokens
            finish = "length" if fault.kind == "length" else "stop"
        if request.max_tokens is not None and request.max_tokens < count:
            count, finish = request.max_tokens, "length"
        return count, finish

    async def _send_tokens(self, send: Send, count: int | None) -> None:
        """Send the stream's `count` tokens (None: until the client leaves), each at its time:
        the pacer sends what it can, this coroutine each token it hands back."""
        writer = self._chunk_writer()
        while not self._all_sent(count):
            if writer is not None:
                await self._pace_tokens(writer, count)
            if not self._all_sent(count):
                await self._send_token(send)

    def _all_sent(self, count: int | None) -> bool:
        return count is not None and self.call.tokens >= count

    async def _send_token(self, send: Send) -> None:
        """The next token, through ASGI: at its time, after the malformed chunk of that fault."""
        fault = self.fault
        if fault.kind == "malformed" and self.call.tokens == fault.after_tokens:
            await self._body(send, b'data: {"id": "' + self.request.id.encode() + b'", "choices": [{"delta\n\n')
        token = self._token_at(self.call.tokens)
        await self._next_token(token)
        await self._body(send, self._token_chunk(token))

    def _chunk_writer(self) -> ChunkWriter | None:
        """A writer of this stream's token chunks past ASGI, unless the fault shapes the body."""
        fault = self.fault
        if fault.kind == "malformed" or fault.bytes_per_second is not None or self.find_transport is None:
            return None
        transport = self.find_transport(self.scope.get("client"))
        return ChunkWriter.for_response(transport, self.scope, self.fault.headers)

    async def _pace_tokens(self, writer: ChunkWriter, count: int | None) -> None:
        """Let the pacer send tokens until all are sent or it hands the next one back."""
        self._writer, self._count = writer, count
        self._handback = asyncio.get_running_loop().create_future()
        self.pacer.call_at(self.next_token_at, self._pace_token)
        await self._handback

    def _pace_token(self) -> None:
        """The pacer's call when the next token is due: send it, or hand it back to the
        coroutine when the client has gone (nothing billed after) or has bytes still queued."""
        handback, writer = self._handback, self._writer
        assert handback is not None and writer is not None
        if handback.done():  # the coroutine was cancelled: a disconnect, an abort
            return
        if self.call.disconnected or not writer.ready():
            handback.set_result(None)
            return
        try:
            token = self._token_at(self.call.tokens)
            self._bill_token(token)
            writer.write(self._token_chunk(token))
        except Exception as exc:  # raised in the coroutine, as if it had sent the token itself
            handback.set_exception(exc)
            return
        if self._all_sent(self._count):
            handback.set_result(None)
        else:
            self.pacer.call_at(self.next_token_at, self._pace_token)

    def _token_at(self, index: int) -> str:
        answer = self.request.answer
        return answer[index % len(answer)]

    def _tokens(self, count: int | None) -> typing.Iterator[str]:
        index = 0
        while count is None or index < count:
            yield self._token_at(index)
            index += 1

    async def _next_token(self, token: str) -> None:
        await self._sleep_until(self.next_token_at)
        if self.call.disconnected:  # gone as this token fell due: bill nothing after the disconnect
            await anyio.sleep_forever()  # the watcher's cancel is on its way
        self._bill_token(token)

    def _bill_token(self, token: str) -> None:
        """Record `token` as sent now and schedule the next one."""
        self.ledger.add_token(self.call, token)
        fault = self.fault
        delay = fault.token_delay
        if fault.jitter:  # the generator serves only jitter: without it, no draw is seen
            delay += self.rng.uniform(-fault.jitter, fault.jitter)
        self.next_token_at += max(0.0, delay)

    async def _sleep_until(self, moment: float) -> None:
        # asyncio.sleep is what anyio.sleep awaits on this backend (the fake always runs on
        # uvicorn's asyncio loop), minus a backend lookup that cost ~5% of the server's CPU at
        # 10,000 tokens/s: this runs once per token.
        await asyncio.sleep(max(0.0, moment - time.monotonic()))

    # -- wire ------------------------------------------------------------------------------------

    async def _start(self, send: Send, status: int, content_type: str, length: int | None = None) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"x-request-id", self.request.id.encode()),
        ]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        if content_type.startswith("text/event-stream"):
            headers.append((b"cache-control", b"no-cache"))
        for name, value in self.fault.headers.items():
            headers.append((name.lower().encode(), value.encode()))
        # Recorded before the headers leave, so a client that has them never finds the ledger behind.
        self.ledger.update(self.call, status=status, headers_at=time.monotonic())
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _body(self, send: Send, data: bytes, more: bool = True, outcome: str = "completed") -> None:
        if self.fault.bytes_per_second is None:  # the common case, once per token: kept short
            if not more:
                self._finish(outcome)
            await send({"type": "http.response.body", "body": data, "more_body": more})
            return
        pieces = self._drip_pieces(data) if self.fault.kind == "drip" else [data]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if last and not more:  # only now: a client that leaves mid-drip is a disconnect
                self._finish(outcome)
            await send({"type": "http.response.body", "body": piece, "more_body": more or not last})
            if self.fault.bytes_per_second is not None:  # a drip
                await anyio.sleep(len(piece) / self.fault.bytes_per_second)

    def _drip_pieces(self, data: bytes) -> list[bytes]:
        assert self.fault.bytes_per_second is not None
        step = max(1, round(self.fault.bytes_per_second * DRIP_INTERVAL))
        return [data[i : i + step] for i in range(0, len(data), step)] or [b""]

    async def _send_error(self, send: Send) -> None:
        body = json.dumps(wire.error_body(self.fault.status, self.fault.message)).encode()
        await self._start(send, self.fault.status, "application/json", length=len(body))
        await self._body(send, body, more=False)

    def _chunk(self, delta: dict[str, typing.Any] | None, finish_reason: str | None = None) -> bytes:
        """A stream chunk; ``delta=None`` makes the last, usage-only chunk."""
        request = self.request
        return wire.sse(
            wire.chunk(
                id=request.id,
                model=request.model,
                created=self.created,
                delta=delta,
                finish_reason=finish_reason,
                usage=self._usage() if delta is None else None,
                with_usage=request.include_usage,
            )
        )

    def _token_chunk(self, token: str) -> bytes:
        """``self._chunk({"content": token})``, byte for byte, without building and encoding the
        whole chunk for every token (~10% of the server's CPU at 10,000 tokens/s): the chunk is
        rendered once around a placeholder and only the token is encoded each time."""
        if self._token_frame is None:
            head, placeholder, tail = self._chunk({"content": "\x00"}).partition(b'"\\u0000"')
            assert placeholder, "the placeholder must appear in the chunk"
            self._token_frame = (head, tail)
        head, tail = self._token_frame
        return head + json.dumps(token).encode() + tail

    def _completion(self, finish: str) -> dict[str, typing.Any]:
        return wire.completion(
            id=self.request.id,
            model=self.request.model,
            created=self.created,
            text=self.call.text,
            finish_reason=finish,
            usage=self._usage(),
        )

    def _usage(self) -> dict[str, int]:
        return wire.usage(self.request.prompt_tokens, self.call.tokens)

    async def _close(self, *, reset: bool) -> None:
        """Close the connection under the response: with a TCP reset, or a plain close (FIN)."""
        if not await self._drop_connection(reset=reset, outcome="reset" if reset else "cut"):
            raise RuntimeError("the fake provider can only drop connections it serves with uvicorn")

    async def _drop_connection(self, *, reset: bool, outcome: str) -> bool:
        transport = self.find_transport(self.scope.get("client")) if self.find_transport else None
        if transport is None:
            return False
        while transport.get_write_buffer_size():  # let the tokens already sent reach the client
            await anyio.sleep(0.001)
        self._finish(outcome)
        if reset:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        await anyio.sleep(0.001)  # let uvicorn see the connection gone, or it logs an error
        return True


class Inflight:
    """The playbacks under way, so a test's reset can stop them from another thread."""

    def __init__(self) -> None:
        self._scopes: dict[anyio.CancelScope, asyncio.AbstractEventLoop] = {}

    def add(self, scope: anyio.CancelScope) -> None:
        self._scopes[scope] = asyncio.get_running_loop()

    def discard(self, scope: anyio.CancelScope) -> None:
        self._scopes.pop(scope, None)

    def abort_all(self) -> None:
        """Cancel every playback; safe to call from any thread."""
        for scope, loop in list(self._scopes.items()):
            try:
                loop.call_soon_threadsafe(scope.cancel)
            except RuntimeError:  # the server's loop is already closed
                pass

    def __len__(self) -> int:
        return len(self._scopes)

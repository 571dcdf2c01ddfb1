"""How a stream's tokens leave the fake: the pacer's ticks, and the chunks written past ASGI.

The bytes are checked on a raw socket, chunk by chunk: a token written straight to the
connection must be framed exactly as uvicorn frames an ASGI body message, also when a connection
with bytes queued makes the fake mix both ways on it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import time
import typing

import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol

from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.fake_llm.chunked import ChunkWriter
from harness.fake_llm.pacer import TICK, Pacer

from .helpers import MODEL, PROMPT

# -- the pacer -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_pacer_runs_callbacks_in_ticks_never_before_their_moment() -> None:
    pacer = Pacer()
    ran: list[tuple[str, float]] = []
    tick = math.ceil(time.monotonic() / TICK) + 10  # 10 ticks ahead
    moments = {"a": (tick + 0.2) * TICK, "b": (tick + 0.8) * TICK, "early": (tick - 3.5) * TICK}
    for name, moment in moments.items():
        pacer.call_at(moment, lambda name=name: ran.append((name, time.monotonic())))
    assert len(pacer) == 3
    await asyncio.sleep(15 * TICK)
    while len(pacer):  # a loaded machine may take longer
        await asyncio.sleep(TICK)

    assert [name for name, _ in ran] == ["early", "a", "b"]
    for name, at in ran:
        assert at >= moments[name]
    # "a" and "b" fall in one tick: one timer ran them, at the tick's end, one after the other.
    assert ran[2][1] - ran[1][1] < TICK / 2
    assert ran[1][1] >= (tick + 1) * TICK - 1e-6


@pytest.mark.anyio
async def test_a_moment_already_past_runs_on_the_loops_next_turn_not_in_the_running_tick() -> None:
    """A stream without token delay asks for the moment just past after each token: the loop must
    serve others between two of its tokens, as ``asyncio.sleep(0)`` did."""
    pacer = Pacer()
    order: list[str] = []

    def paced(n: int) -> None:
        order.append(f"paced {n}")
        if n < 3:
            pacer.call_at(0.0, lambda: paced(n + 1))

    async def other() -> None:
        for n in range(3):
            order.append(f"other {n}")
            await asyncio.sleep(0)

    pacer.call_at(0.0, lambda: paced(0))
    await asyncio.gather(other(), asyncio.sleep(0.05))
    assert sorted(order) == ["other 0", "other 1", "other 2", "paced 0", "paced 1", "paced 2", "paced 3"]
    assert order.index("other 1") < order.index("paced 3")  # not all four in a row


@pytest.mark.anyio
async def test_a_failing_callback_does_not_stop_the_others_of_its_tick() -> None:
    pacer = Pacer()
    errors: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context["exception"]))
    ran = []
    try:
        moment = time.monotonic() + 2 * TICK
        pacer.call_at(moment, lambda: 1 / 0)
        pacer.call_at(moment, lambda: ran.append("after"))
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(None)
    assert ran == ["after"]
    assert [type(e) for e in errors] == [ZeroDivisionError]


# -- the chunk writer ------------------------------------------------------------------------------


class _Transport:
    """What `ChunkWriter` asks of a transport, settable."""

    def __init__(self, protocol: object = None, queued: int = 0, closing: bool = False) -> None:
        self.protocol, self.queued, self.closing = protocol, queued, closing
        self.written: list[bytes] = []

    def get_protocol(self) -> object:
        return self.protocol

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.queued

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_the_chunk_writer_frames_a_chunk_as_h11_does_and_waits_for_an_idle_connection() -> None:
    transport = _Transport()
    writer = ChunkWriter(typing.cast(asyncio.Transport, transport))
    writer.write(b"data: x\n\n")
    assert transport.written == [b"9\r\ndata: x\n\n\r\n"]
    assert writer.ready()
    transport.queued = 10  # a client slow to read: the token goes through uvicorn's back-pressure
    assert not writer.ready()
    transport.queued, transport.closing = 0, True
    assert not writer.ready()


# An instance of uvicorn's protocol for its type only, never set up: all `for_response` looks at.
_UVICORN = H11Protocol.__new__(H11Protocol)


@pytest.mark.parametrize(
    ("protocol", "version", "headers"),
    [
        pytest.param(_UVICORN, "1.0", {}, id="an HTTP/1.0 client: no chunks"),
        pytest.param(_UVICORN, "1.1", {"Content-Length": "10"}, id="a length in the fault's headers"),
        pytest.param(object(), "1.1", {}, id="a server other than uvicorn"),
    ],
)
def test_no_chunk_writer_where_the_body_may_not_be_chunked_as_uvicorn_chunks_it(
    protocol: object, version: str, headers: dict[str, str]
) -> None:
    transport = typing.cast(asyncio.Transport, _Transport(protocol=protocol))
    assert ChunkWriter.for_response(transport, {"http_version": version}, headers) is None


def test_a_chunk_writer_where_uvicorn_chunks_the_body_as_it_does() -> None:
    transport = typing.cast(asyncio.Transport, _Transport(protocol=_UVICORN))
    assert ChunkWriter.for_response(transport, {"http_version": "1.1"}, {"X-Other": "1"}) is not None
    assert ChunkWriter.for_response(None, {"http_version": "1.1"}, {}) is None  # no connection found


# -- on the wire -----------------------------------------------------------------------------------


def _raw_request(fake: FakeLLM, version: str = "1.1") -> socket.socket:
    host, port = fake.url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    ).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def _read(sock: socket.socket, until: typing.Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while not until(data) and time.monotonic() < deadline:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def _chunks(body: bytes) -> tuple[list[bytes], bytes]:
    """The complete chunks of a chunked body, strictly parsed, and what follows them."""
    chunks = []
    while b"\r\n" in body:
        size_line, rest = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        assert rest[size : size + 2] == b"\r\n", "a chunk must end with CRLF"
        chunks.append(rest[:size])
        body = rest[size + 2 :]
    return chunks, body


def _token(event: bytes) -> str:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n") and event.count(b"\n\n") == 1
    delta = json.loads(event[6:])["choices"][0]["delta"]
    return typing.cast(str, delta["content"])


def _count_direct_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    written: list[bytes] = []
    write = ChunkWriter.write

    def counted(self: ChunkWriter, data: bytes) -> None:
        written.append(data)
        write(self, data)

    monkeypatch.setattr(ChunkWriter, "write", counted)
    return written


def test_a_stream_is_one_chunk_per_event_its_tokens_written_straight_to_the_connection(
    fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _count_direct_writes(monkeypatch)
    fake_llm.script(f.ok(tokens=12, token_delay=0.002))
    with _raw_request(fake_llm) as sock:
        raw = _read(sock, until=lambda data: data.endswith(b"\r\n0\r\n\r\n"))

    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    chunks, rest = _chunks(body)
    assert rest == b"0\r\n\r\n"
    role, *tokens, finish, done = chunks
    assert json.loads(role[6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(finish[6:])["choices"][0]["finish_reason"] == "stop"
    assert done == b"data: [DONE]\n\n"
    [call] = fake_llm.calls
    assert "".join(_token(t) for t in tokens) == call.text and len(tokens) == call.tokens == 12
    assert direct == tokens  # every token went past ASGI, framed as uvicorn frames the others


def test_an_http_1_0_client_gets_the_events_unchunked(
    fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _count_direct_writes(monkeypatch)
    fake_llm.script(f.ok(tokens=5, token_delay=0.002))
    with _raw_request(fake_llm, version="1.0") as sock:
        raw = _read(sock, until=lambda data: data.endswith(b"data: [DONE]\n\n"))

    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    events = [e + b"\n\n" for e in body.split(b"\n\n")[:-1]]
    assert len(events) == 1 + 5 + 1 + 1
    assert "".join(_token(e) for e in events[1:6]) == fake_llm.calls[0].text
    assert direct == []


def test_tokens_handed_back_to_asgi_interleave_in_order_with_those_written_straight(
    fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With bytes queued on the connection (a client slow to read), the pacer hands a token back
    to the stream's coroutine, which sends it through ASGI and uvicorn's back-pressure. Here the
    connection looks busy at every other token: both ways then share one connection."""
    direct = _count_direct_writes(monkeypatch)
    ready, asked = ChunkWriter.ready, itertools.count()
    monkeypatch.setattr(ChunkWriter, "ready", lambda self: next(asked) % 2 == 0 and ready(self))
    fake_llm.script(f.ok(tokens=12, token_delay=0.002))
    with _raw_request(fake_llm) as sock:
        raw = _read(sock, until=lambda data: data.endswith(b"\r\n0\r\n\r\n"))

    chunks, rest = _chunks(raw.partition(b"\r\n\r\n")[2])
    assert rest == b"0\r\n\r\n"
    tokens = chunks[1:-2]
    [call] = fake_llm.calls
    assert "".join(_token(t) for t in tokens) == call.text and len(tokens) == 12
    assert direct == tokens[::2]  # the others went through ASGI, in their place

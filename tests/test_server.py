"""ServerThread and FakeLLM lifecycle: loopback only, free ports, stops that never hang, no leaks."""

import asyncio
import contextlib
import socket
import threading
import typing

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.server import ServerError, ServerThread, _cancel_every_task


def test_serves_on_loopback_with_a_free_port() -> None:
    with FakeLLM() as one, FakeLLM() as two:
        assert one.url.startswith("http://127.0.0.1:")
        assert one.url != two.url
        assert httpx.get(f"{one.base_url}/models").status_code == 200


def test_start_and_stop_leave_no_thread() -> None:
    # How long they take is benchmarks/server_lifecycle.py's to print (~1.4 ms and ~0.2 s).
    before = set(threading.enumerate())
    with FakeLLM() as fake:
        assert httpx.get(f"{fake.base_url}/models").status_code == 200
    assert set(threading.enumerate()) == before


def test_stop_ends_a_stalled_stream_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn is told to wait for open requests without end, and the last resort to fail the
    # test: stop() returns only if it ends the stalled stream itself, not by waiting it out.
    fake = FakeLLM()
    fake.start()
    fake._server.server.config.timeout_graceful_shutdown = None
    monkeypatch.setattr(ServerThread, "_cancel_until_stopped", _held_the_stop)
    fake.always(f.stall(after_tokens=1))
    body = {"model": "fake-large", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=fake.base_url) as client:
        with client.stream("POST", "/chat/completions", json=body) as response:
            lines = response.iter_lines()  # kept: a discarded iterator closes the connection
            next(lines)
            fake.stop()
    assert fake.calls[0].outcome == "aborted"


def _held_the_stop(server: ServerThread, timeout: float) -> None:
    server._call_soon(_cancel_every_task)  # ends the thread, so that the test leaves none
    raise AssertionError("the stalled stream held the stop until it was cancelled")


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} free"):
            FakeLLM(port=port).start()


def test_stop_ends_a_request_that_swallows_cancellation() -> None:
    # uvicorn cancels a request still running after its graceful timeout, and asyncio.run
    # cancels the tasks left once more; a request that outlives both used to hang stop().
    began = threading.Event()

    async def stubborn(scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        began.set()
        for _ in range(2):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)
        await asyncio.sleep(60)

    with _one_request_under_way(stubborn, began) as server:
        server.stop(timeout=0.5)


def test_a_server_that_will_not_stop_says_where_it_is_stuck() -> None:
    began, release = threading.Event(), threading.Event()

    async def frozen(scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        began.set()
        release.wait()  # blocks the whole event loop: no cancellation can reach it

    with _one_request_under_way(frozen, began) as server:
        try:
            with pytest.raises(ServerError, match=r"did not stop.*frozen \(test_server\.py:\d+\)"):
                server.stop(timeout=0.2)
        finally:
            release.set()


@contextlib.contextmanager
def _one_request_under_way(app: typing.Any, began: threading.Event) -> typing.Iterator[ServerThread]:
    """`app` served, once it has `began` to answer a request; then stopped, the asker gone."""
    server = ServerThread(app, lifespan="off")
    server.start()
    asker = threading.Thread(target=_ask, args=(server.url,))
    asker.start()
    try:
        assert began.wait(5)
        yield server
    finally:
        server.stop()
        asker.join()


def _ask(url: str) -> None:
    """One request that may end any way at all: the tests above stop the server under it."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=10)

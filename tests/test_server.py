"""ServerThread and FakeLLM lifecycle: loopback only, free ports, fast start and stop, no leaks."""

import asyncio
import contextlib
import socket
import threading
import time
import typing

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.server import ServerError, ServerThread


def test_serves_on_loopback_with_a_free_port() -> None:
    with FakeLLM() as one, FakeLLM() as two:
        assert one.url.startswith("http://127.0.0.1:")
        assert one.url != two.url
        assert httpx.get(f"{one.base_url}/models").status_code == 200


def test_start_and_stop_well_under_a_second_and_leave_no_thread() -> None:
    before = set(threading.enumerate())
    started = time.monotonic()
    fake = FakeLLM()
    fake.start()
    start_took = time.monotonic() - started
    stopped = time.monotonic()
    fake.stop()
    stop_took = time.monotonic() - stopped
    # The bound is "well under 1 s"; measured ~25 ms to start and ~0.15 s to stop.
    # 0.5 s leaves room for a loaded machine and still catches a server that waits on a timer.
    assert start_took < 0.5
    assert stop_took < 0.5
    assert set(threading.enumerate()) == before


def test_stop_does_not_wait_for_a_stalled_stream() -> None:
    fake = FakeLLM()
    fake.start()
    fake.always(f.stall(after_tokens=1))
    body = {"model": "fake-large", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=fake.base_url) as client:
        with client.stream("POST", "/chat/completions", json=body) as response:
            lines = response.iter_lines()  # kept: a discarded iterator closes the connection
            next(lines)
            stopped = time.monotonic()
            fake.stop()
            # Same bound as above: the stalled response is aborted, not waited for.
            assert time.monotonic() - stopped < 0.5
    assert fake.calls[0].outcome == "aborted"


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

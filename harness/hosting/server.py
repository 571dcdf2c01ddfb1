"""Serve an ASGI app with uvicorn on loopback, in a background thread.

The fake provider runs this way in tests, and so does the app under test in thread mode. The port
is always chosen free by the kernel unless asked for; the address is always 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
import typing

import uvicorn

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server could not start (port taken, startup failed) or would not stop."""


class ServerThread:
    """A uvicorn server in a daemon thread, with a start that waits until it listens.

    Stopping takes about 0.1 s (uvicorn's shutdown pause); requests still open then are given
    `graceful_timeout` seconds to end before they are cancelled, so a stalled stream never makes
    `stop()` hang. A thread that outlives that is made to end (`_cancel_until_stopped`), or named
    with where it is stuck.
    """

    def __init__(
        self,
        app: typing.Any,
        *,
        port: int = 0,
        lifespan: str = "auto",
        graceful_timeout: float = 0.5,
        keep_alive: int = 5,
        name: str = "uvicorn",
    ) -> None:
        config = uvicorn.Config(
            app,
            host=HOST,
            port=port,
            lifespan=lifespan,  # type: ignore[arg-type]
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
            timeout_keep_alive=keep_alive,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: asyncio.Task[None] | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except SystemExit:  # uvicorn exits when it cannot bind or start; start() reports it
            pass
        except asyncio.CancelledError:  # _cancel_until_stopped reached the serving task itself
            pass

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._serving = asyncio.current_task()
        try:
            await self.server.serve()
        except asyncio.CancelledError:
            await self._close_at_once()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise ServerError(
                    f"the server stopped during startup (is port {self.server.config.port} free?)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the server did not start within {timeout:g}s")
            time.sleep(0.001)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop as uvicorn stops on Ctrl+C; if the thread still runs `timeout` seconds later, as
        on a second Ctrl+C (``force_exit``), cancelling what is left until it ends."""
        if not self._thread.is_alive():
            return
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._cancel_until_stopped(timeout)

    def stop_now(self, timeout: float = 10.0) -> None:
        """Stop without uvicorn's graceful pauses (~0.2 s): stop listening, cancel every request
        still running, then run the app's lifespan shutdown. For an app under test, whose
        scenario is over, this is what a killed process would do, minus the mess."""
        if not self._thread.is_alive() or self._loop is None or self._serving is None:
            return self.stop(timeout)
        self._call_soon(self._serving.cancel)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._cancel_until_stopped(timeout)

    def _cancel_until_stopped(self, timeout: float) -> None:
        """Cancel every task on the loop, again each 0.1 s, until the thread ends.

        Once is not enough: uvicorn's request task catches the cancellation (it catches
        BaseException, to answer 500) and may then wait on a client that never reads, and
        `asyncio.run` cancels the tasks left when `serve()` returns only once, then waits for
        them without end.
        """
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._call_soon(_cancel_every_task)
            self._thread.join(0.1)
        if self._thread.is_alive():
            raise ServerError(
                f"the server thread did not stop, even cancelled for {timeout:g}s: {self._stuck_at()}"
            )

    def _call_soon(self, callback: typing.Callable[[], object]) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed in between: it has stopped
                self._loop.call_soon_threadsafe(callback)

    def _stuck_at(self) -> str:
        """Where the thread is, and what each task left on its loop awaits: all a report of a
        server that would not stop can say."""
        frame = sys._current_frames().get(self._thread.ident or 0)
        places = [f"the thread is in {_calls(traceback.extract_stack(frame))}" if frame else ""]
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                for task in asyncio.all_tasks(self._loop):
                    places.append(f"{task.get_name()} awaits in {_calls(_awaits(task))}")
        return "; ".join(place for place in places if place) or "nowhere it can tell"

    async def _close_at_once(self) -> None:
        for server in self.server.servers:
            server.close()
        requests = list(self.server.server_state.tasks)
        for request in requests:
            request.cancel()
        await asyncio.gather(*requests, return_exceptions=True)
        for connection in list(self.server.server_state.connections):
            connection.shutdown()
        if self.server.started:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.lifespan.shutdown(), timeout=1.0)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def find_transport(self, client: typing.Any) -> asyncio.Transport | None:
        """The transport of the connection from `client` (an ASGI scope's ``client``).

        Only valid in the server's own thread. ASGI has no way to drop a connection without a
        response, so the fake provider uses this to reset one, as a failing upstream does.
        """
        if client is None:
            return None
        for connection in list(self.server.server_state.connections):
            if getattr(connection, "client", None) == tuple(client):
                transport: asyncio.Transport = connection.transport
                return transport
        return None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _cancel_every_task() -> None:
    for task in asyncio.all_tasks():
        task.cancel()


def _awaits(task: asyncio.Task[typing.Any]) -> traceback.StackSummary:
    """The chain of coroutines `task` is suspended in, outermost first."""
    frames = []
    coroutine: typing.Any = task.get_coro()
    while coroutine is not None and getattr(coroutine, "cr_frame", None) is not None:
        frames.append((coroutine.cr_frame, coroutine.cr_frame.f_lineno))
        coroutine = coroutine.cr_await
    return traceback.StackSummary.extract(frames, lookup_lines=False)


def _calls(stack: traceback.StackSummary, innermost: int = 4) -> str:
    calls = [f"{call.name} ({call.filename.rsplit('/', 1)[-1]}:{call.lineno})" for call in stack]
    return " > ".join(calls[-innermost:]) or "no call"

"""Notice the users who leave before their answer ended, for `faultfirst play`.

`faultfirst play` runs the app through this module instead of ``python -m uvicorn``: the same
uvicorn, on the same listening socket, serving the app wrapped in `watch_departures`. The wrapper
reads each request's messages from the server as soon as they come, and hands them to the app
when it asks for them, so it sees ``http.disconnect`` the moment a client goes, whether the app
listens for it or not. A client gone before the response's last byte is written as one JSON
line (a `Departure`) on a pipe that `faultfirst play` reads through an `Observer`.

Why a wrapper in the app's own server rather than a proxy in front of it: the app keeps its
server, its clients' addresses and its timings, and sees a client leave exactly when and as it
would without play; nothing in the app changes. Grading never runs this module: only an
`AppProcess` given an `Observer` does, and only `faultfirst play` gives one.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import sys
import threading
import time
import typing
from dataclasses import asdict, dataclass

import uvicorn
from uvicorn.importer import import_from_string

Message = typing.MutableMapping[str, typing.Any]
Scope = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]
ASGIApp = typing.Callable[[Scope, Receive, Send], typing.Awaitable[None]]

LINE_LIMIT = 8192  # bytes read as one line at most, of the app's output and of the reports
PATH_LIMIT = 1000  # characters of a path reported: a report stays one line, read whole


@dataclass(frozen=True)
class Departure:
    """A client that closed its connection before its response ended."""

    method: str
    path: str
    at: float  # when, as `time.monotonic()` (one clock for every process of the machine)
    after: float  # seconds after the request came in
    status: int | None  # the status the app had sent by then, None if no response had started

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Departure | None:
        """The departure `line` reports, or None for anything else: the app runs in the process
        that writes the pipe, and could write to it too."""
        try:
            data = json.loads(line)
            departure = cls(
                method=str(data["method"]),
                path=str(data["path"]),
                at=float(data["at"]),
                after=float(data["after"]),
                status=None if data["status"] is None else int(data["status"]),
            )
        except (ValueError, TypeError, KeyError):
            return None
        return departure if math.isfinite(departure.at) and math.isfinite(departure.after) else None


def watch_departures(app: ASGIApp, report: typing.Callable[[Departure], None]) -> ASGIApp:
    """`app`, with a `report` for each HTTP request whose client left before its response ended."""

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        await _Request(scope, receive, send, report).run(app)

    return watched


class _Request:
    """One HTTP request: its messages read ahead for the app, its response followed to the end."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, report: typing.Callable[[Departure], None]
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._report = report
        self._started = time.monotonic()
        self._status: int | None = None
        self._ended = False
        self._messages: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()
        self._gone = False

    async def run(self, app: ASGIApp) -> None:
        reader = asyncio.create_task(self._read_ahead())
        try:
            await app(self.scope, self.receive, self.send)
        finally:
            reader.cancel()

    async def receive(self) -> Message:
        """The next message the server had for the app; ``http.disconnect`` once the client has
        gone (or the response has ended), as often as asked, as uvicorn does."""
        while not self._messages and not self._gone:
            self._arrived.clear()
            await self._arrived.wait()
        return self._messages.popleft() if self._messages else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self._ended = True  # before the server marks it ended, and wakes `_read_ahead`
        elif message["type"] == "http.response.pathsend":
            self._ended = True
        await self._send(message)

    async def _read_ahead(self) -> None:
        while (message := await self._receive())["type"] != "http.disconnect":
            self._messages.append(message)
            self._arrived.set()
        self._gone = True
        self._arrived.set()
        if not self._ended:
            now = time.monotonic()
            self._report(
                Departure(
                    method=str(self.scope.get("method", "")),
                    path=str(self.scope.get("path", ""))[:PATH_LIMIT],
                    at=now,
                    after=now - self._started,
                    status=self._status,
                )
            )


class Observer:
    """What `faultfirst play` follows of an app it runs: each line the app prints, to
    `on_output`, and each user who leaves before their answer ended, to `on_departure`, as they
    happen. `harness.hosting.launcher.AppProcess` runs the app through this module for it."""

    def __init__(
        self,
        on_output: typing.Callable[[str], None],
        on_departure: typing.Callable[[Departure], None],
    ) -> None:
        self._on_output = on_output
        self._on_departure = on_departure
        self._reports, self.report_fd = os.pipe()  # the app writes the second
        self._output: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    def command(self, python: str, uvicorn: list[str]) -> list[str]:
        """How to run the app with uvicorn's arguments `uvicorn`, its departures reported."""
        return [python, "-m", __name__, "--report-fd", str(self.report_fd), *uvicorn]

    def follow(self, output: typing.IO[bytes], log: typing.Callable[[bytes], None]) -> None:
        """Follow the app just started: `output` is its stdout and stderr, each line of which also
        goes to `log`."""
        os.close(self.report_fd)  # the app holds its own copy: the pipe ends when the app does
        self._output = self._thread("app-output", self._read_output, output, log)
        self._thread("app-departures", self._read_departures)

    def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the rest of the output of an app that has ended."""
        if self._output is not None:
            self._output.join(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stop following (the app has been stopped): the readers end with its pipes."""
        if self._closed:
            return
        self._closed = True
        for thread in self._threads:
            thread.join(timeout)
        if not self._threads:  # never followed: the app did not start
            os.close(self.report_fd)
        os.close(self._reports)

    def _thread(
        self, name: str, target: typing.Callable[..., None], *args: object
    ) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _read_output(self, output: typing.IO[bytes], log: typing.Callable[[bytes], None]) -> None:
        with output:
            while line := output.readline(LINE_LIMIT):
                log(line)
                self._on_output(line.decode(errors="replace").rstrip("\r\n"))

    def _read_departures(self) -> None:
        with os.fdopen(self._reports, "rb", closefd=False) as reports:
            while line := reports.readline(LINE_LIMIT):
                if (departure := Departure.from_line(line)) is not None:
                    self._on_departure(departure)


def _reporter(fd: int) -> typing.Callable[[Departure], None]:
    def report(departure: Departure) -> None:
        try:
            os.write(fd, departure.to_line())  # one write, under the pipe's atomic size
        except OSError:
            pass  # play has gone: the app is about to be stopped

    return report


def main(argv: typing.Sequence[str] | None = None) -> None:
    """Serve the app as ``uvicorn APP --fd N --app-dir FOLDER --no-access-log --log-level L``
    would (the arguments `AppProcess` gives uvicorn), its departures reported on --report-fd."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("app")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--app-dir", required=True)
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    sys.path.insert(0, args.app_dir)  # as uvicorn's --app-dir does
    app = import_from_string(args.app)
    uvicorn.run(
        watch_departures(app, _reporter(args.report_fd)),
        fd=args.fd,
        access_log=not args.no_access_log,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()

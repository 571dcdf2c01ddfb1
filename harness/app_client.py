"""How scenarios talk to the app under test: as its users do, over HTTP on loopback.

`AppClient` asks questions (``POST /api/answer``), calls the app's other endpoints
(`AppClient.request`), reads streamed answers as Server-Sent Events
(``POST /api/answer/stream``), and plays users who give up: a stream left midway, a tab closed
while the answer is on its way. It notes when users leave and which answers they read, so the
report can count the tokens nobody read.

Everything the app sends is checked on the way in: a body that is not JSON, or an event that is not
well formed, fails the scenario with a sentence saying so (an `AssertionError`), never a harness
crash. Every call is bounded by `CLIENT_GIVES_UP`: an app that hangs fails a scenario, it cannot
hang the grader.
"""

from __future__ import annotations

import contextlib
import json
import time
import typing
from dataclasses import dataclass, field

import anyio
import httpx

from .grading.evidence import UserActivity
from .hosting.launcher import SSL_CONTEXT

# Longer than any answer in a scenario takes, by far; an app still silent then has hung.
CLIENT_GIVES_UP = 10.0



@dataclass
class Reply:
    """A whole response from ``POST /api/answer``, or from the endpoint named in `what`."""

    status: int
    headers: httpx.Headers
    text: str
    took: float  # seconds from sending the request to having the whole response
    what: str = "POST /api/answer"  # the request, as failure messages name it

    def json(self) -> dict[str, typing.Any]:
        """The body as a JSON object, or a failed scenario saying what came instead."""
        try:
            body = json.loads(self.text)
        except ValueError:
            raise AssertionError(
                f"{self.what} answered {self.status} with a body that is not JSON: "
                f"{excerpt(self.text)}"
            ) from None
        assert isinstance(body, dict), (
            f"{self.what} answered {self.status} with JSON that is not an object: "
            f"{excerpt(self.text)}"
        )
        return body

    def error(self) -> dict[str, typing.Any]:
        """The body of an error reply, after checking it is one the user can read: a 4xx or 5xx
        with a JSON object carrying a ``message``."""
        assert self.status >= 400, (
            f"{self.what} answered {self.status} although it failed: {excerpt(self.text)}"
        )
        body = self.json()
        assert isinstance(body.get("message"), str) and body["message"].strip(), (
            f"the error reply ({self.status}) should say what happened in a 'message': "
            f"{excerpt(self.text)}"
        )
        return body

    def answer(self) -> str:
        """The ``answer`` of a successful reply, after checking it is one."""
        assert self.status == 200, (
            f"{self.what} answered {self.status} instead of an answer: {excerpt(self.text)}"
        )
        answer = self.json().get("answer")
        assert isinstance(answer, str), f"the reply has no string 'answer': {excerpt(self.text)}"
        return answer


@dataclass
class Event:
    """One server-sent event, with the moment (``time.monotonic()``) it arrived."""

    name: str
    data: typing.Any
    at: float

    @property
    def text(self) -> str:
        """The text of a ``token`` event."""
        assert isinstance(self.data, dict) and isinstance(self.data.get("text"), str), (
            f'a token event should carry {{"text": "..."}}, this one carried {self.data!r}'
        )
        return typing.cast(str, self.data["text"])


@dataclass
class StreamReply:
    """A whole streamed answer: every event, in order."""

    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    body: str = ""  # the raw body of a response that is not an event stream

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]

    @property
    def tokens(self) -> list[Event]:
        return [event for event in self.events if event.name == "token"]

    @property
    def text(self) -> str:
        """The answer as the user read it: the token events' texts, joined."""
        return "".join(event.text for event in self.tokens)

    @property
    def is_event_stream(self) -> bool:
        return _is_event_stream(self.headers)

    def expect_events(self) -> None:
        """Check the response is a stream of events, the way the brief asks."""
        assert self.status == 200, (
            f"POST /api/answer/stream answered {self.status} instead of streaming: "
            f"{excerpt(self.body)}"
        )
        assert self.is_event_stream, (
            "POST /api/answer/stream should answer with Content-Type: text/event-stream, "
            f"not {self.headers.get('content-type')!r}"
        )

    def last(self, name: str) -> Event:
        """The final event, after checking it is a `name` event."""
        assert self.events, f"the stream ended without any event (status {self.status})"
        final = self.events[-1]
        assert final.name == name, (
            f"the stream's last event was {final.name!r}, expected {name!r} "
            f"(events: {_summary(self.names)})"
        )
        return final


class AppClient:
    """The users of the app at `url`."""

    def __init__(self, url: str, users: UserActivity | None = None) -> None:
        self.url = url
        self.users = users if users is not None else UserActivity()

    def http(self) -> httpx.AsyncClient:
        """A plain loopback client: no proxy from the environment may sit on the path."""
        return httpx.AsyncClient(
            base_url=self.url, trust_env=False, timeout=CLIENT_GIVES_UP, verify=SSL_CONTEXT
        )

    def sync_http(self) -> httpx.Client:
        """The same, for synchronous code (a hypothesis property's examples)."""
        return httpx.Client(
            base_url=self.url, trust_env=False, timeout=CLIENT_GIVES_UP, verify=SSL_CONTEXT
        )

    async def ask(self, question: str) -> Reply:
        """``POST /api/answer`` and wait for the whole reply."""
        started = time.monotonic()
        with _bounded("POST /api/answer"):
            async with self.http() as http:
                response = await http.post("/api/answer", json={"question": question})
        self.users.read.add(question)
        return Reply(
            response.status_code, response.headers, response.text, time.monotonic() - started
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: typing.Any = None,
        headers: typing.Mapping[str, str] | None = None,
    ) -> Reply:
        """Any request to the app (``client.request("GET", f"/api/jobs/{id}")``), and its whole
        reply."""
        what = f"{method} {path}"
        started = time.monotonic()
        with _bounded(what):
            async with self.http() as http:
                response = await http.request(method, path, json=json, headers=headers)
        took = time.monotonic() - started
        return Reply(response.status_code, response.headers, response.text, took, what)

    async def ask_many(self, questions: typing.Iterable[str]) -> dict[str, Reply]:
        """Ask several questions at once, each on a connection of its own, as several users do."""
        replies: dict[str, Reply] = {}

        async def ask(question: str) -> None:
            replies[question] = await self.ask(question)

        async with anyio.create_task_group() as tasks:
            for question in questions:
                tasks.start_soon(ask, question)
        return replies

    async def stream(self, question: str) -> StreamReply:
        """``POST /api/answer/stream`` and read it to the end."""
        async with self.open_stream(question) as reply:
            async for _ in reply.follow():
                pass
        return reply.result

    @contextlib.asynccontextmanager
    async def open_stream(
        self, question: str, *, headers: typing.Mapping[str, str] | None = None
    ) -> typing.AsyncIterator[OpenStream]:
        """A streamed answer the scenario reads event by event; leaving the block before the
        stream has ended is the user leaving (the connection is closed, as a closed tab does)."""
        body = {"question": question}
        with _bounded("POST /api/answer/stream"):
            async with (
                self.http() as http,
                http.stream("POST", "/api/answer/stream", json=body, headers=headers) as response,
            ):
                stream = OpenStream(response)
                if not stream.result.is_event_stream:
                    stream.result.body = (await response.aread()).decode(errors="replace")
                    stream.ended = True
                try:
                    yield stream
                finally:
                    if stream.ended:
                        self.users.read.add(question)
                    else:
                        stream.left_at = time.monotonic()
                        self.users.left.append((question, stream.left_at))

    def tab(self, question: str, *, stream: bool = False) -> Tab:
        """A browser tab asking `question` in the background, to run in a task group."""
        return Tab(self, question, stream=stream)


class OpenStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.result = StreamReply(response.status_code, response.headers)
        self.ended = False
        self.left_at: float | None = None

    async def follow(self) -> typing.AsyncIterator[Event]:
        """The events as they arrive, each as soon as its blank line has."""
        name, data = "message", []
        async for line in self.response.aiter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
            elif not line and data:
                event = Event(name, _decoded(name, "\n".join(data)), time.monotonic())
                self.result.events.append(event)
                name, data = "message", []
                yield event
        self.ended = True


class Tab:
    """A browser tab asking a question in the background (run `run` in a task group).

    `sent()` returns once the whole request is on the wire; `close()` abandons the request as
    closing the tab does (the connection is closed) and returns the moment it did. The tab asks
    ``POST /api/answer``, or with `stream` ``POST /api/answer/stream``, and keeps what it got in
    `reply` (a `Reply` or a `StreamReply`) if it got to the end.
    """

    def __init__(self, client: AppClient, question: str, *, stream: bool = False) -> None:
        self.client = client
        self.question = question
        self.stream = stream
        self.reply: Reply | StreamReply | None = None
        self._sent = anyio.Event()
        self._scope = anyio.CancelScope()

    async def run(self) -> None:
        async def trace(event: str, info: dict[str, typing.Any]) -> None:
            if event == "http11.send_request_body.complete":
                self._sent.set()

        started = time.monotonic()
        path = "/api/answer/stream" if self.stream else "/api/answer"
        question = {"question": self.question}
        with self._scope, _bounded(f"POST {path}"):
            async with (
                self.client.http() as http,
                http.stream("POST", path, json=question, extensions={"trace": trace}) as response,
            ):
                if self.stream and _is_event_stream(response.headers):
                    stream = OpenStream(response)
                    async for _ in stream.follow():
                        pass
                    self.reply = stream.result
                else:
                    body = (await response.aread()).decode(errors="replace")
                    took = time.monotonic() - started
                    self.reply = Reply(response.status_code, response.headers, body, took)
            self.client.users.read.add(self.question)

    async def sent(self) -> None:
        """Wait until the whole request is on the wire."""
        with anyio.fail_after(CLIENT_GIVES_UP):
            await self._sent.wait()

    def close(self) -> float:
        closed_at = time.monotonic()
        self._scope.cancel()
        self.client.users.left.append((self.question, closed_at))
        return closed_at


@contextlib.contextmanager
def _bounded(what: str) -> typing.Iterator[None]:
    try:
        with anyio.fail_after(CLIENT_GIVES_UP):
            yield
    except TimeoutError:
        raise AssertionError(
            f"{what} was still going after {CLIENT_GIVES_UP:g}s; the app seems to hang"
        ) from None


def _is_event_stream(headers: httpx.Headers) -> bool:
    return str(headers.get("content-type", "")).startswith("text/event-stream")


def _decoded(name: str, data: str) -> typing.Any:
    try:
        return json.loads(data)
    except ValueError:
        raise AssertionError(
            f"the stream sent an {name!r} event whose data is not JSON: {excerpt(data)}"
        ) from None


def excerpt(value: typing.Any, limit: int = 200) -> str:
    """`value` quoted on one line for a failure message, cut at `limit` characters: an app's
    reply can be a whole page of HTML, or a traceback."""
    text = " ".join((value if isinstance(value, str) else repr(value)).split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _summary(names: list[str]) -> str:
    """``token ×12, done``: a run of equal names written once."""
    runs: list[list[typing.Any]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", ".join(name if count == 1 else f"{name} ×{count}" for name, count in runs) or "none"

"""What the fake provider's tests share: request bodies, a loopback client, and a stream reader
that notes when each server-sent event arrived.

Everything goes through a real `httpx.AsyncClient` over 127.0.0.1 to the `fake_llm` fixture's
uvicorn server: no ASGI transport, so the bytes, the timing and the broken connections are the
ones an app under test would see.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import ssl
import time
import typing
from dataclasses import dataclass, field

import anyio
import httpx

from harness.fake_llm import Call, FakeLLM

MODEL = "fake-large"
OTHER_MODEL = "fake-small"
PROMPT = "Summarise the three abstracts in two sentences."

# Generous by default: a test that expects silence sets its own short read timeout.
TIMEOUT = httpx.Timeout(5.0)


def chat(
    prompt: str = PROMPT, *, model: str = MODEL, stream: bool = False, **extra: typing.Any
) -> dict[str, typing.Any]:
    """A chat-completions request body with one user message."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream, **extra}


# The fake speaks plain HTTP, but httpx builds a TLS context for every client unless given one:
# ~50 ms each. One shared context keeps a client as cheap as a request.
_TLS = ssl.create_default_context()


def loopback_client(base_url: str, **kwargs: typing.Any) -> httpx.AsyncClient:
    """A plain httpx client. `trust_env=False`: no proxy may sit on the loopback path."""
    kwargs.setdefault("timeout", TIMEOUT)
    return httpx.AsyncClient(base_url=base_url, trust_env=False, verify=_TLS, **kwargs)


def client(fake: FakeLLM, **kwargs: typing.Any) -> httpx.AsyncClient:
    """A client of the fake's OpenAI API (base URL ``.../v1``)."""
    return loopback_client(fake.base_url, **kwargs)


def read_timeout(seconds: float) -> httpx.Timeout:
    """Connect and write as usual, but give up when no byte arrives for `seconds`."""
    return httpx.Timeout(5.0, read=seconds)


@dataclass
class Event:
    """One ``data:`` line of a stream and when the client read it (`time.monotonic()`)."""

    at: float
    data: str

    @property
    def is_json(self) -> bool:
        try:
            json.loads(self.data)
        except ValueError:
            return False
        return True

    def json(self) -> typing.Any:
        return json.loads(self.data)


@dataclass
class Stream:
    """A streamed response being read event by event."""

    response: httpx.Response
    sent_at: float  # just before the request was sent
    headers_at: float  # when the client had the status and headers
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next_event(self) -> Event | None:
        """The next ``data:`` event, or None when the response ended."""
        async for line in self._lines:
            if line.startswith("data: "):
                event = Event(time.monotonic(), line.removeprefix("data: "))
                self.events.append(event)
                return event
        return None

    async def read(self, count: int | None = None) -> list[Event]:
        """Read `count` more events (or all that remain); errors propagate, events stay in `events`."""
        new: list[Event] = []
        while count is None or len(new) < count:
            event = await self.next_event()
            if event is None:
                break
            new.append(event)
        return new

    async def read_tokens(self, count: int) -> None:
        """Read until `count` token chunks have arrived (role and other chunks are kept too)."""
        while len(self.tokens) < count:
            if await self.next_event() is None:
                raise AssertionError(f"the stream ended after {len(self.tokens)} of {count} tokens")

    @property
    def chunks(self) -> list[dict[str, typing.Any]]:
        """The events that are JSON (not ``[DONE]``, not a malformed line)."""
        return [e.json() for e in self.events if e.data != "[DONE]" and e.is_json]

    @property
    def token_events(self) -> list[Event]:
        return [e for e in self.events if e.is_json and _token_of(e.json()) is not None]

    @property
    def tokens(self) -> list[str]:
        return [typing.cast(str, _token_of(e.json())) for e in self.token_events]

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def finish_reasons(self) -> list[str]:
        return [
            choice["finish_reason"]
            for chunk in self.chunks
            for choice in chunk.get("choices", [])
            if choice.get("finish_reason")
        ]

    @property
    def done(self) -> bool:
        return any(e.data == "[DONE]" for e in self.events)

    async def aclose(self) -> None:
        await self._lines.aclose()  # type: ignore[attr-defined]


def _token_of(chunk: typing.Any) -> str | None:
    """The content delta of a token chunk; None for the role chunk, the finish chunk, usage."""
    if not isinstance(chunk, dict) or not chunk.get("choices"):
        return None
    delta = chunk["choices"][0].get("delta", {})
    if "role" in delta or not delta.get("content"):
        return None
    return typing.cast(str, delta["content"])


@contextlib.asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, body: dict[str, typing.Any], **kwargs: typing.Any
) -> typing.AsyncIterator[Stream]:
    """POST a streaming request; the response is closed (and the connection with it, if the
    stream was not read to its end) when the block exits."""
    sent_at = time.monotonic()
    async with http.stream("POST", "/chat/completions", json={**body, "stream": True}, **kwargs) as response:
        stream = Stream(response, sent_at=sent_at, headers_at=time.monotonic())
        try:
            yield stream
        finally:
            await stream.aclose()


async def wait_for_one_call(
    fake: FakeLLM, condition: typing.Callable[[Call], bool], what: str, timeout: float = 5.0
) -> Call:
    """Wait until the ledger's only call satisfies `condition`, and return it."""
    calls = await fake.ledger.wait_for(
        lambda calls: len(calls) == 1 and condition(calls[0]), timeout=timeout, what=what
    )
    return calls[0]


def gaps(times: typing.Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def abandon_once_received(
    fake: FakeLLM,
    request: typing.Callable[[], typing.Awaitable[object]],
    when: typing.Callable[[Call], bool] = lambda call: True,
) -> float:
    """Start `request`, wait until the fake has it in its ledger (and `when` holds for it), then
    cancel it as an app does when its user closes the tab (httpx closes the connection under a
    cancelled request). Returns the moment just before the cancel: a detection latency measured
    from it is an upper bound of the true one."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(request)
        await wait_for_one_call(fake, when, "the request to reach the fake")
        closing_at = time.monotonic()
        tasks.cancel_scope.cancel()
    return closing_at

"""Answering questions: whole answers for the JSON endpoint, streamed ones for the page.

Both get the same care (retries, then the fallback model, inside the request's deadline), from
`with_fallback`. They differ in what can still be retried: a whole answer is retried until it is
complete, a streamed one only until its first piece has been shown to the user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import typing
from dataclasses import dataclass

from .breaker import CircuitBreaker
from .deadline import Deadline
from .errors import AnswerInterrupted
from .fallback import Served, with_fallback
from .inflight import SharedCalls
from .llm import LLMClient, Usage
from .papers import build_messages
from .retry import is_transient
from .settings import Settings

Pieces = typing.AsyncGenerator[str | Usage, None]


@dataclass(frozen=True)
class Metadata:
    """What the user is told about an answer besides its text."""

    served: Served
    usage: Usage  # of the call that answered
    latency: float  # seconds from the question to the whole answer, every attempt included

    def to_json(self) -> dict[str, typing.Any]:
        return {
            **dataclasses.asdict(self.served),
            "usage": dataclasses.asdict(self.usage),
            "latency_ms": round(self.latency * 1000),
        }


@dataclass(frozen=True)
class Answer:
    text: str
    metadata: Metadata

    def to_json(self) -> dict[str, typing.Any]:
        return {"answer": self.text, **self.metadata.to_json()}


class AnswerService:
    def __init__(self, llm: LLMClient, settings: Settings, breaker: CircuitBreaker) -> None:
        self._llm = llm
        self._settings = settings
        self._shared: SharedCalls[Answer] = SharedCalls()
        self._breaker = breaker  # the app's: it learns from every call to the primary

    async def answer(self, question: str) -> Answer:
        """The whole answer. People asking the same question at once share one call; each is
        told the latency they saw, from their own question, not the first asker's."""
        started = time.monotonic()
        answer = await self._shared.run(question, lambda: self._answer(question))
        metadata = dataclasses.replace(answer.metadata, latency=time.monotonic() - started)
        return dataclasses.replace(answer, metadata=metadata)

    async def _answer(self, question: str) -> Answer:
        started = time.monotonic()
        messages = build_messages(question)
        deadline = Deadline.after(self._settings.request_deadline)
        completion, served = await with_fallback(
            lambda model: self._llm.complete(messages, model),
            self._settings,
            deadline,
            self._breaker,
        )
        metadata = Metadata(served, completion.usage, time.monotonic() - started)
        return Answer(completion.text, metadata)

    async def stream(self, question: str) -> typing.AsyncGenerator[str | Metadata, None]:
        """The answer's pieces as the model writes them, then its `Metadata`.

        One call per stream, not shared: its pieces go to one client, and stop when that client
        leaves. Failures before the first piece are retried like any other; after it they end
        the stream with `AnswerInterrupted`, since the user is already reading this attempt.
        """
        started = time.monotonic()
        messages = build_messages(question)
        deadline = Deadline.after(self._settings.request_deadline)
        (first, pieces), served = await with_fallback(
            lambda model: _first_piece(self._llm.stream(messages, model)),
            self._settings,
            deadline,
            self._breaker,
        )
        usage = Usage()
        async with contextlib.aclosing(pieces):
            piece = first
            while piece is not None:
                if isinstance(piece, Usage):
                    usage = piece
                else:
                    yield piece
                piece = await _next_piece(pieces, deadline)
        yield Metadata(served, usage, time.monotonic() - started)


async def _first_piece(pieces: Pieces) -> tuple[str | Usage | None, Pieces]:
    """Start the stream: it counts as a successful attempt once its first piece has arrived."""
    return await anext(pieces, None), pieces


async def _next_piece(pieces: Pieces, deadline: Deadline) -> str | Usage | None:
    with deadline.enforced():  # every piece, since a slow drip never trips httpx's read timeout
        try:
            return await anext(pieces, None)
        except Exception as error:
            if is_transient(error):
                raise AnswerInterrupted("The answer broke off.") from error
            raise

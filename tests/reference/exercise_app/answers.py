"""Answering questions: whole answers for the JSON endpoint, streamed ones for the page.

Both get the same care (retries, then the fallback model, inside the request's deadline), from
`with_fallback`. They differ in what can still be retried: a whole answer is retried until it is
complete, a streamed one only until its first piece has been shown to the user.
"""

from __future__ import annotations

import contextlib
import typing
from dataclasses import dataclass

from .breaker import CircuitBreaker
from .deadline import Deadline
from .errors import AnswerInterrupted
from .fallback import Served, with_fallback
from .inflight import SharedCalls
from .llm import LLMClient
from .papers import build_messages
from .retry import is_transient
from .settings import Settings

Tokens = typing.AsyncGenerator[str, None]


@dataclass(frozen=True)
class Answer:
    text: str
    served: Served


class AnswerService:
    def __init__(self, llm: LLMClient, settings: Settings) -> None:
        self._llm = llm
        self._settings = settings
        self._shared: SharedCalls[Answer] = SharedCalls()
        self._breaker = CircuitBreaker()  # one per app: it learns from every request

    async def answer(self, question: str) -> Answer:
        """The whole answer. People asking the same question at once share one call."""
        return await self._shared.run(question, lambda: self._answer(question))

    async def _answer(self, question: str) -> Answer:
        messages = build_messages(question)
        deadline = Deadline.after(self._settings.request_deadline)
        completion, served = await with_fallback(
            lambda model: self._llm.complete(messages, model),
            self._settings,
            deadline,
            self._breaker,
        )
        return Answer(completion.text, served)

    async def stream(self, question: str) -> typing.AsyncGenerator[str | Served, None]:
        """The answer's pieces as the model writes them, then who served it.

        One call per stream, not shared: its pieces go to one client, and stop when that client
        leaves. Failures before the first piece are retried like any other; after it they end
        the stream with `AnswerInterrupted`, since the user is already reading this attempt.
        """
        messages = build_messages(question)
        deadline = Deadline.after(self._settings.request_deadline)
        (first, tokens), served = await with_fallback(
            lambda model: _first_token(self._llm.stream(messages, model)),
            self._settings,
            deadline,
            self._breaker,
        )
        async with contextlib.aclosing(tokens):
            token = first
            while token is not None:
                yield token
                token = await _next_token(tokens, deadline)
        yield served


async def _first_token(tokens: Tokens) -> tuple[str | None, Tokens]:
    """Start the stream: it counts as a successful attempt once its first piece has arrived."""
    return await anext(tokens, None), tokens


async def _next_token(tokens: Tokens, deadline: Deadline) -> str | None:
    with deadline.enforced():  # every piece, since a slow drip never trips httpx's read timeout
        try:
            return await anext(tokens, None)
        except Exception as error:
            if is_transient(error):
                raise AnswerInterrupted("The answer broke off.") from error
            raise

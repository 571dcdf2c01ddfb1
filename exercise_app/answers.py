"""Answering questions, one LLM call per question however many people ask it at once.

Two browser tabs asking the same question share one in-flight LLM call: the second waits for the
answer the first one started, instead of paying for a second call.
"""

from __future__ import annotations

import asyncio

from .llm import Completion, LLMClient
from .papers import build_messages
from .settings import Settings


class AnswerService:
    def __init__(self, llm: LLMClient, settings: Settings) -> None:
        self._llm = llm
        self._settings = settings
        self._in_flight: dict[str, asyncio.Task[Completion]] = {}

    async def answer(self, question: str) -> Completion:
        task = self._in_flight.get(question)
        if task is None:
            task = asyncio.create_task(self._ask(question))
            self._in_flight[question] = task
            task.add_done_callback(lambda _: self._in_flight.pop(question, None))
        # Shielded: one waiter giving up must not cancel the answer others wait for.
        return await asyncio.shield(task)

    async def _ask(self, question: str) -> Completion:
        return await self._llm.complete(build_messages(question), self._settings.primary_model)

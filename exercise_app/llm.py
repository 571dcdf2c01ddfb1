"""A small client for the LLM provider (the OpenAI chat-completions wire format)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .settings import Settings


@dataclass(frozen=True)
class Completion:
    text: str
    model: str


class LLMClient:
    def __init__(self, settings: Settings) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.llm_base_url,
            headers={"Authorization": f"Bearer {settings.llm_api_key}"},
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        )

    async def complete(self, messages: list[dict[str, str]], model: str) -> Completion:
        """Ask `model` for a whole answer and wait until it is complete."""
        response = await self._http.post(
            "/chat/completions", json={"model": model, "messages": messages}
        )
        response.raise_for_status()
        body = response.json()
        return Completion(text=body["choices"][0]["message"]["content"], model=body["model"])

    async def aclose(self) -> None:
        await self._http.aclose()

"""A small client for the LLM provider (the OpenAI chat-completions wire format).

It speaks the wire format and nothing more: every way the provider can fail becomes a
`ProviderError` or one of httpx's own errors, and `retry.py` decides which of them are worth
another attempt.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass

import httpx

from .settings import Settings


@dataclass(frozen=True)
class Usage:
    """Tokens the provider billed for one call, as it reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_json(cls, data: typing.Any) -> Usage:
        """Read the provider's ``usage`` object; anything missing or odd counts as 0."""
        if not isinstance(data, dict):
            return cls()
        return cls(_count(data.get("prompt_tokens")), _count(data.get("completion_tokens")))


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    usage: Usage


class ProviderError(Exception):
    """The provider answered with an error, or with an answer that broke off or made no sense.

    `status` is the HTTP status of an error response, or None for a failure inside a response
    that had started well (an error chunk mid-stream, a stream cut short, a garbled body).
    `headers` are kept because they may say how long to wait before trying again.
    """

    def __init__(
        self, message: str, *, status: int | None = None, headers: httpx.Headers | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers if headers is not None else httpx.Headers()

    @classmethod
    def from_response(cls, response: httpx.Response) -> ProviderError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        status = response.status_code
        return cls(f"{status} {message}", status=status, headers=response.headers)


class LLMClient:
    def __init__(self, settings: Settings) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.llm_base_url,
            headers={"Authorization": f"Bearer {settings.llm_api_key}"},
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        )

    async def complete(
        self,
        messages: list[dict[str, str]],
        model: str,
        *,
        response_format: dict[str, str] | None = None,
    ) -> Completion:
        """Ask `model` for a whole answer and wait until it is complete; `response_format` is
        the provider's, e.g. ``{"type": "json_object"}``."""
        body: dict[str, typing.Any] = {"model": model, "messages": messages}
        if response_format is not None:
            body["response_format"] = response_format
        response = await self._http.post("/chat/completions", json=body)
        if response.is_error:
            raise ProviderError.from_response(response)
        try:
            body = response.json()
            text = body["choices"][0]["message"]["content"]
            return Completion(text, body["model"], Usage.from_json(body.get("usage")))
        except (ValueError, LookupError, TypeError) as exc:
            raise ProviderError(f"the provider sent a malformed answer: {exc!r}") from exc

    async def stream(
        self, messages: list[dict[str, str]], model: str
    ) -> typing.AsyncGenerator[str | Usage, None]:
        """Yield the pieces of `model`'s answer as the provider sends them, then its `Usage`.

        Closing the generator (or cancelling the task reading it) closes the connection, which is
        how the provider learns to stop generating, and billing, the answer.
        """
        body = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},  # else a stream reports no usage at all
        }
        usage = Usage()
        async with self._http.stream("POST", "/chat/completions", json=body) as response:
            if response.is_error:
                await response.aread()
                raise ProviderError.from_response(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # the blank line between events, or a comment
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    yield usage
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict):
                    continue  # a garbled chunk: skip it, as an SSE reader skips a line it can't use
                if error := chunk.get("error"):  # the provider failed after it started answering
                    raise ProviderError(f"the provider failed mid-answer: {error}")
                if chunk.get("usage"):  # on the last chunk (null before), with include_usage
                    usage = Usage.from_json(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    if text := (choice.get("delta") or {}).get("content"):
                        yield text
        raise ProviderError("the answer broke off before its end")

    async def aclose(self) -> None:
        await self._http.aclose()


def _count(value: typing.Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

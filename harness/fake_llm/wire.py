"""The OpenAI chat-completions wire format: bodies, stream chunks and error shapes."""

from __future__ import annotations

import json
import typing

# The error `type` and `code` a provider sends with each status, as the SDKs expect them.
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request", "The request was malformed."),
    401: ("authentication_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", "permission_denied", "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout_error", "request_timeout", "The request timed out."),
    409: ("conflict_error", "conflict", "The request conflicted with another one."),
    422: ("invalid_request_error", "unprocessable_entity", "The request could not be processed."),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", "internal_error", "The server had an error processing your request."),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded."),
    504: ("timeout_error", "gateway_timeout", "The upstream timed out."),
    529: ("overloaded_error", "overloaded", "The model is overloaded. Please try again later."),
}


def error_body(status: int, message: str | None = None) -> dict[str, typing.Any]:
    kind, code, default = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", str(status), "Error.")
    )
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


def completion(
    *, id: str, model: str, created: int, text: str, finish_reason: str, usage: dict[str, int]
) -> dict[str, typing.Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


def chunk(
    *,
    id: str,
    model: str,
    created: int,
    delta: dict[str, typing.Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    with_usage: bool = False,
) -> dict[str, typing.Any]:
    """One stream chunk. With `delta=None` it is the usage-only chunk (no choices)."""
    data: dict[str, typing.Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage:
        data["usage"] = usage
    return data


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def sse(data: dict[str, typing.Any] | str) -> bytes:
    """One server-sent event line in the provider's style: ``data: ...`` and a blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def prompt_text(messages: list[dict[str, typing.Any]]) -> str:
    """The conversation as one string: what answers are derived from and rules match against."""
    return "\n".join(f"{m.get('role', '')}: {_content(m.get('content'))}" for m in messages)


def _content(content: typing.Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)

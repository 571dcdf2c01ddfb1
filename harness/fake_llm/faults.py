"""The fault catalogue: what the fake provider does with one request.

A `Fault` describes one response from start to end: how long the provider "thinks" before the
headers, how tokens are paced, and what goes wrong (if anything). Build them with the functions
below rather than the class, so that nonsense (a negative delay, a 200 "error") fails at the line
that wrote it, not later inside a request::

    from harness.fake_llm import faults as f

    f.ok(first_token=0.2, token_delay=0.01)
    f.error(429, retry_after=0.2)
    f.reset(after_tokens=5)

Every constructor takes the same timing keywords:

- `latency`: seconds before the response headers are sent;
- `first_token`: seconds after the headers until the first token;
- `token_delay`: seconds between tokens, and `jitter`: up to that much more or less, drawn from
  the fake's seed;
- `tokens`: how many tokens the answer has (default: derived from the prompt, whole sentences,
  24 to 64 tokens);
- `content`: the exact answer text, instead of the derived one.

A non-streaming request "generates" its tokens on the same clock and sends the body when the last
one is done, so the two modes bill and time alike.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

KINDS = (
    "ok",
    "error",
    "reset",
    "stall",
    "hang",
    "drip",
    "cut",
    "malformed",
    "endless",
    "length",
    "near_miss_json",
)
JSON_STYLES = ("fenced", "prose", "trailing_comma")


class FaultError(ValueError):
    """A fault that makes no sense; raised where the fault is written."""


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"
    latency: float = 0.0
    first_token: float = 0.0
    token_delay: float = 0.0
    jitter: float = 0.0
    tokens: int | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    after_tokens: int | None = None
    bytes_per_second: float | None = None
    json_style: str | None = None
    content: str | None = None

    def __post_init__(self) -> None:
        _check(self)

    def describe(self) -> str:
        """A short human line for ledgers and reports, e.g. ``error 429 (retry-after: 0.2)``."""
        words = [self.kind]
        if self.kind == "error":
            words.append(str(self.status))
        if self.after_tokens is not None:
            words.append(f"after {self.after_tokens} tokens")
        if self.bytes_per_second is not None:
            words.append(f"at {self.bytes_per_second:g} B/s")
        if self.json_style:
            words.append(self.json_style)
        headers = ", ".join(f"{k}: {v}" for k, v in self.headers.items())
        text = " ".join(words)
        return f"{text} ({headers})" if headers else text

    def to_dict(self) -> dict[str, typing.Any]:
        """The fault's non-default fields, the form `from_dict` and the admin API take."""
        defaults = Fault()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name == "kind" or getattr(self, f.name) != getattr(defaults, f.name)
        }

    @classmethod
    def from_dict(cls, data: typing.Mapping[str, typing.Any]) -> Fault:
        """Build a fault from JSON-like data, rejecting unknown keys by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FaultError(f"unknown fault field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)


def ok(**timing: typing.Any) -> Fault:
    """A normal answer: prose, or a paper record's JSON when the request asks for JSON (with
    ``response_format``), unless `content` says what it is."""
    return Fault("ok", **timing)


def error(
    status: int,
    *,
    retry_after: float | str | None = None,
    retry_after_ms: float | None = None,
    headers: typing.Mapping[str, str] | None = None,
    message: str | None = None,
    after_tokens: int | None = None,
    **timing: typing.Any,
) -> Fault:
    """An HTTP error in the provider's shape, e.g. ``error(429, retry_after=0.2)``.

    `retry_after` may be seconds or an HTTP date string. With `after_tokens`, a stream sends that
    many tokens and then an error chunk (as providers do when generation fails mid-stream).
    """
    all_headers = dict(headers or {})
    if retry_after is not None:
        all_headers["retry-after"] = _header_number(retry_after)
    if retry_after_ms is not None:
        all_headers["retry-after-ms"] = _header_number(retry_after_ms)
    return Fault(
        "error",
        status=status,
        headers=all_headers,
        message=message,
        after_tokens=after_tokens,
        **timing,
    )


def reset(*, after_tokens: int = 0, **timing: typing.Any) -> Fault:
    """Reset the TCP connection: before the headers (`after_tokens=0`) or after N tokens."""
    return Fault("reset", after_tokens=after_tokens, **timing)


def stall(*, after_tokens: int = 0, **timing: typing.Any) -> Fault:
    """Send the headers and N tokens, then nothing more, keeping the connection open."""
    return Fault("stall", after_tokens=after_tokens, **timing)


def hang(**timing: typing.Any) -> Fault:
    """Accept the request and never answer: no headers, no bytes."""
    return Fault("hang", **timing)


def drip(bytes_per_second: float, **timing: typing.Any) -> Fault:
    """Send the whole response a few bytes at a time: every read is quick, the whole is slow."""
    return Fault("drip", bytes_per_second=bytes_per_second, **timing)


def cut(*, after_tokens: int, **timing: typing.Any) -> Fault:
    """End the response after N tokens: a stream without its final chunk and ``[DONE]``, a JSON
    body shorter than its Content-Length."""
    return Fault("cut", after_tokens=after_tokens, **timing)


def malformed(*, after_tokens: int = 0, **timing: typing.Any) -> Fault:
    """After N tokens, a chunk that is not JSON; the stream then goes on."""
    return Fault("malformed", after_tokens=after_tokens, **timing)


def endless(**timing: typing.Any) -> Fault:
    """Generate tokens until the client goes away (set `token_delay`, or it floods)."""
    return Fault("endless", **timing)


def length(*, after_tokens: int, **timing: typing.Any) -> Fault:
    """Stop after N tokens with ``finish_reason: "length"``, as when ``max_tokens`` is hit."""
    return Fault("length", after_tokens=after_tokens, **timing)


def near_miss_json(style: str, content: str | None = None, **timing: typing.Any) -> Fault:
    """Answer with JSON that a bare ``json.loads`` rejects: ``fenced`` in a ```json block,
    ``prose`` around it, or a ``trailing_comma``. `content` is the JSON text to wrap (default: a
    paper record derived from the prompt)."""
    return Fault("near_miss_json", json_style=style, content=content, **timing)


def _check(fault: Fault) -> None:
    if fault.kind not in KINDS:
        raise FaultError(f"unknown fault {fault.kind!r}; known: {', '.join(KINDS)}")
    for name in ("latency", "first_token", "token_delay", "jitter"):
        value = getattr(fault, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise FaultError(f"{fault.kind}: {name} must be a number of seconds >= 0, got {value!r}")
    if fault.tokens is not None and (not isinstance(fault.tokens, int) or fault.tokens < 1):
        raise FaultError(f"{fault.kind}: tokens must be a whole number >= 1, got {fault.tokens!r}")
    if fault.after_tokens is not None and (
        not isinstance(fault.after_tokens, int) or fault.after_tokens < 0
    ):
        raise FaultError(
            f"{fault.kind}: after_tokens must be a whole number >= 0, got {fault.after_tokens!r}"
        )
    if fault.kind == "error" and not (isinstance(fault.status, int) and 400 <= fault.status <= 599):
        raise FaultError(f"error: status must be an HTTP error (400-599), got {fault.status!r}")
    if fault.kind != "error" and fault.status != 200:
        raise FaultError(f"{fault.kind}: only an error fault sets a status")
    if fault.kind == "drip" and not (
        isinstance(fault.bytes_per_second, (int, float)) and fault.bytes_per_second > 0
    ):
        raise FaultError(f"drip: bytes_per_second must be > 0, got {fault.bytes_per_second!r}")
    if fault.kind == "near_miss_json" and fault.json_style not in JSON_STYLES:
        raise FaultError(
            f"near_miss_json: style must be one of {', '.join(JSON_STYLES)}, got {fault.json_style!r}"
        )
    if fault.kind in ("cut", "length") and fault.after_tokens is None:
        raise FaultError(f"{fault.kind}: after_tokens is required")


def _header_number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value < 0:
        raise FaultError(f"error: a retry delay must be >= 0, got {value!r}")
    return f"{value:g}"

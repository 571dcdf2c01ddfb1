"""What the metadata scenarios check: an answer's metadata against the calls the provider saw.

The metadata is what the app says about an answer besides its text (the brief's "Metadata" task)::

    {"model": "fake-large", "fallback": false, "attempts": 1,
     "usage": {"prompt_tokens": 151, "completion_tokens": 40},
     "latency_ms": 812, "request_id": "..."}

Each value is checked against the fake's ledger, never against a number the app could make up.
"""

from __future__ import annotations

import typing

from ..fake_llm.ledger import Call
from ..timing import CLOCK_SLACK

REQUEST_ID = "X-Request-ID"

# latency_ms is a whole number of milliseconds: rounding moves it by up to one either way.
ROUNDING = 0.001


def expect_types(metadata: typing.Any) -> dict[str, typing.Any]:
    """Check every field is there with its type; return the metadata."""
    assert isinstance(metadata, dict), f"the metadata should be a JSON object, not {metadata!r}"
    for name, kind, example in (
        ("model", str, '"fake-large"'),
        ("fallback", bool, "false"),
        ("attempts", int, "1"),
        ("usage", dict, '{"prompt_tokens": 151, "completion_tokens": 40}'),
        ("latency_ms", int, "812"),
        ("request_id", str, '"3f2a..."'),
    ):
        value = metadata.get(name)
        wrong_kind = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        assert not wrong_kind, (
            f"the metadata's {name!r} should be a JSON {_json_type(kind)} (e.g. {example}), "
            f"not {value!r}: {_shown(metadata)}"
        )
    for name in ("prompt_tokens", "completion_tokens"):
        count = metadata["usage"].get(name)
        assert isinstance(count, int) and not isinstance(count, bool), (
            f"usage.{name} should be a whole number of tokens, not {count!r}: {_shown(metadata)}"
        )
    assert metadata["request_id"].strip(), "the metadata's request_id is empty"
    return typing.cast(dict[str, typing.Any], metadata)


def expect_served_by(metadata: dict[str, typing.Any], calls: list[Call]) -> None:
    """Model, attempts, fallback flag and usage match the provider's calls for this answer, the
    last of which served it."""
    serving = calls[-1]
    assert metadata["model"] == serving.model, (
        f"the answer came from {serving.model}, but its metadata says model {metadata['model']!r}"
    )
    assert metadata["attempts"] == len(calls), (
        f"the provider saw {len(calls)} call(s) for this answer, but its metadata says "
        f"attempts {metadata['attempts']!r} (count every call, the first one included)"
    )
    expected = {"prompt_tokens": serving.prompt_tokens, "completion_tokens": serving.tokens}
    usage = {name: metadata["usage"].get(name) for name in expected}
    assert usage == expected, (
        f"the provider billed {expected} for the call that answered, but the metadata's usage "
        f"says {usage}: report the usage the provider sends, do not estimate it"
    )


def expect_latency(metadata: dict[str, typing.Any], calls: list[Call], *, within: float) -> None:
    """``latency_ms`` covers every call for the answer (it cannot be shorter than from the first
    call's arrival to the last one's end, the fake being never early) and no more than `within`
    seconds, the time the user waited as measured by the scenario."""
    latency = metadata["latency_ms"] / 1000
    upstream = max(call.ended_at or call.received_at for call in calls) - calls[0].received_at
    assert latency >= upstream - ROUNDING - CLOCK_SLACK, (
        f"latency_ms is {metadata['latency_ms']}, but the model alone took "
        f"{upstream * 1000:.0f} ms: measure from the question to the whole answer, every "
        "attempt included, in milliseconds"
    )
    assert latency <= within + ROUNDING + CLOCK_SLACK, (
        f"latency_ms is {metadata['latency_ms']}, but the user had the whole answer after "
        f"{within * 1000:.0f} ms"
    )


def expect_request_id(metadata: dict[str, typing.Any], headers: typing.Mapping[str, str]) -> None:
    """The id in the metadata is the one in the response's ``X-Request-ID`` header."""
    header = headers.get(REQUEST_ID)
    assert header, f"the response should carry an {REQUEST_ID} header"
    assert metadata["request_id"] == header, (
        f"the metadata's request_id {metadata['request_id']!r} differs from the "
        f"{REQUEST_ID} header {header!r}"
    )


def _shown(metadata: dict[str, typing.Any]) -> str:
    """The metadata for a message, without the answer's text (long, and beside the point)."""
    return repr({name: value for name, value in metadata.items() if name != "answer"})


def _json_type(kind: type) -> str:
    return {str: "string", bool: "boolean", int: "integer", dict: "object"}[kind]

"""What the structured-output scenarios check: a paper's card, read from what the model wrote.

A card, as ``POST /api/extract`` answers it (the brief's "Structured output" task)::

    {"title": "...", "year": 2024, "keywords": ["...", "..."]}

Scenarios script every answer the model gives, and answer any call beyond the script with text
that holds no card: what an app gets never depends on how it asks (with ``response_format`` or
not).
"""

from __future__ import annotations

import typing

from ..app_client import Reply, excerpt
from ..fake_llm import FakeLLM
from ..fake_llm import faults as f
from ..fake_llm.faults import Fault
from .errors import is_error

FIELDS = ("title", "year", "keywords")


def model_answers(fake_llm: FakeLLM, *answers: Fault, then: str) -> None:
    """The model gives `answers`, one per call, then only `then`, which holds no card."""
    fake_llm.reset()
    fake_llm.script(*answers)
    fake_llm.always(f.ok(content=then))


def card_of(body: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """The card's fields in a reply's body (None for a missing one)."""
    return {name: body.get(name) for name in FIELDS}


def expect_error(reply: Reply, status: int, after: str) -> None:
    """The reply is an error with `status` and the brief's error shape; `after` says what led
    to it, for the message."""
    assert reply.status == status, (
        f"{after}, {reply.what} answered {reply.status}, expected {status}: {excerpt(reply.text)}"
    )
    assert is_error(reply.json()), (
        f"the {status} reply should be JSON with a string 'code', a 'message' saying what "
        f"happened and a boolean 'retryable'; it was {excerpt(reply.text)}"
    )

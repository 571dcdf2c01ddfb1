"""Structured output: a paper's card, read by the model as JSON, even when the JSON is not quite."""

from __future__ import annotations

import json
import typing

import pytest

from harness.app_client import AppClient, Reply, excerpt
from harness.checks import cards
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f

pytestmark = pytest.mark.anyio

PAPER = "retrieval"
CARD: dict[str, typing.Any] = {
    "title": "Retrieval-Augmented Generation for Long Documents",
    "year": 2024,
    "keywords": ["retrieval", "long documents", "question answering"],
}
NOT_A_CARD = "I'm sorry, I can't tell when this paper was published from its abstract."
CUT_SHORT = json.dumps(CARD)[:60]  # a card the model stopped writing midway: not JSON


async def extract(client: AppClient) -> Reply:
    return await client.request("POST", "/api/extract", json={"paper": PAPER})


def card_of(reply: Reply, model_wrote: str) -> dict[str, typing.Any]:
    """The card in a successful reply, after checking it is one."""
    assert reply.status == 200, (
        f"the model answered {model_wrote} and POST /api/extract answered {reply.status}, not "
        f"the card: {excerpt(reply.text)}"
    )
    return cards.card_of(reply.json())


def check_one_call(fake_llm: FakeLLM, model_wrote: str) -> None:
    calls = len(fake_llm.calls)
    assert calls == 1, (
        f"the model answered {model_wrote}, and the app called it {calls} time(s): that answer "
        "holds the card, it should be read from the first answer"
    )


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="JSON in a code fence is read",
    hint="Models often wrap JSON in a Markdown code fence (```json ... ```): read the JSON inside "
    "it rather than handing the raw text to json.loads; and answer with the card's three "
    "fields, not with any others the model adds.",
    checks=["structured.near_miss", "structured.card"],
)
async def test_json_in_a_code_fence_is_read(client: AppClient, fake_llm: FakeLLM) -> None:
    # The model adds a field nobody asked for: the card is the three fields, checked.
    written = {**CARD, "authors": ["A. Nonymous"]}
    cards.model_answers(
        fake_llm, f.near_miss_json("fenced", content=json.dumps(written, indent=2)), then=NOT_A_CARD
    )
    reply = await extract(client)
    wrote = "with the card's JSON in a ```json code fence"
    card = card_of(reply, wrote)
    assert card == CARD, f"the model wrote the card {CARD}, POST /api/extract answered {card}"
    assert "authors" not in reply.json(), (
        'the model added an "authors" field to the card, and POST /api/extract passed it on: '
        "answer with the card's fields, checked, not whatever the model wrote"
    )
    check_one_call(fake_llm, wrote)


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="JSON with a sentence around it, or a trailing comma, is read",
    hint="Take the JSON object out of the prose a model writes before or after it (which may "
    "hold braces of its own: the card is the first object that parses), and drop trailing "
    "commas (`[1, 2,]`, `{...,}`) without changing the commas inside strings.",
    checks=["structured.near_miss"],
)
async def test_json_with_prose_or_a_trailing_comma_is_read(
    client: AppClient, fake_llm: FakeLLM
) -> None:
    styles = {
        "prose": "with a sentence before and after the card's JSON",
        "trailing_comma": "with the card's JSON ending in a trailing comma (`,\\n}`)",
    }
    answers = {
        wrote: f.near_miss_json(style, content=json.dumps(CARD, indent=2))
        for style, wrote in styles.items()
    }
    # A sentence with braces of its own before the JSON: the first `{` is not the card's.
    braces = "with a sentence holding braces before the card's JSON"
    answers[braces] = f.ok(content=f"In the shape {{title, year, keywords}}:\n{json.dumps(CARD)}")
    for wrote, answer in answers.items():
        cards.model_answers(fake_llm, answer, then=NOT_A_CARD)
        reply = await extract(client)
        card = card_of(reply, wrote)
        assert card == CARD, (
            f"the model answered {wrote}: {CARD}; POST /api/extract answered {card}"
        )
        check_one_call(fake_llm, wrote)


@pytest.mark.scenario(
    task="structured",
    points=3,
    title="An answer that is not JSON is repaired with one more call",
    hint="When the model's answer still holds no valid JSON card, send it back for one repair: "
    "the same conversation about the paper, with the model's answer and what was wrong with "
    "it; then use the new answer.",
    checks=["structured.repair"],
)
async def test_invalid_output_is_repaired_once(client: AppClient, fake_llm: FakeLLM) -> None:
    cards.model_answers(
        fake_llm, f.ok(content=NOT_A_CARD), f.ok(content=json.dumps(CARD)), then=NOT_A_CARD
    )
    reply = await extract(client)
    calls = fake_llm.calls
    assert len(calls) == 2, (
        f"the model first answered {NOT_A_CARD!r}, and the app called it {len(calls)} time(s): "
        "it should ask once more (the model then answers with the card)"
    )
    # The paper's abstract starts with its title: the repair must still hold the paper, and the
    # answer sent back to be repaired.
    for needed, what in ((CARD["title"], "the paper's abstract"), (NOT_A_CARD, "its answer")):
        assert needed in calls[1].prompt, (
            f"the repair call did not send the model {what}: send back its answer (and what is "
            f"wrong with it) in the conversation about the paper; the repair asked: "
            f"{excerpt(calls[1].prompt)}"
        )
    card = card_of(reply, f"{NOT_A_CARD!r}, then with the card when asked again")
    assert card == CARD, f"the model's second answer was {CARD}, the app answered {card}"


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="An answer still invalid after one repair is a 502 that says so",
    hint="If the repaired answer holds no valid card either, stop there (one repair at most) and "
    'answer 502 with {"code", "message", "retryable"}, the message saying the model\'s answer '
    "could not be read; never let the parse error become a 500.",
    checks=["structured.repair", "structured.invalid", "errors.shape"],
)
async def test_output_that_stays_invalid_is_a_502(client: AppClient, fake_llm: FakeLLM) -> None:
    # Twice: the repair not JSON, then JSON of the wrong shape (a year as a string).
    for repaired in (CUT_SHORT, json.dumps({**CARD, "year": str(CARD["year"])})):
        cards.model_answers(
            fake_llm,
            f.ok(content=NOT_A_CARD),
            f.ok(content=repaired),
            f.ok(content=json.dumps(CARD)),  # what a third call would get
            then=NOT_A_CARD,
        )
        reply = await extract(client)
        calls = len(fake_llm.calls)
        assert calls == 2, (
            f"the model's first two answers held no card, and the app called it {calls} "
            "time(s): it should try one repair, and stop there"
        )
        cards.expect_error(
            reply, 502, f"the model's answer held no card, even after one repair ({repaired!r})"
        )

"""Structured output, hidden: near-misses of every kind (a property), answers of the wrong shape,
a paper the app does not know, and the model's failures (graded along with retries and
fallback)."""

from __future__ import annotations

import json
import string
import typing

import hypothesis
import pytest
from hypothesis import strategies as st

from harness import plugin
from harness.app_client import AppClient, Reply, excerpt
from harness.checks import cards, examples
from harness.checks.errors import ERROR_SHAPE, is_error
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import FAST_RETRIES

pytestmark = pytest.mark.anyio

PAPER = "attention"
CARD: dict[str, typing.Any] = {
    "title": "Sparse Attention at Scale",
    "year": 2023,
    "keywords": ["sparse attention", "inference cost", "long contexts"],
}
NOT_A_CARD = "The abstract does not say who wrote it, so I cannot fill in the card."


# -- near-misses ----------------------------------------------------------------------------------

# Words of titles and keywords: commas, but no brackets, quotes, backslashes or backticks, so that
# a parser that looks for the JSON's brackets, or for a fence's backticks, is not misled.
WORDS = st.text(string.ascii_letters + string.digits + ",.:;'-é", min_size=1, max_size=10)
TEXTS = st.lists(WORDS, min_size=1, max_size=5).map(" ".join)
CARDS = st.fixed_dictionaries(
    {
        "title": TEXTS,
        "year": st.integers(1990, 2025),
        "keywords": st.lists(TEXTS, min_size=1, max_size=5, unique=True),
    }
)
FENCES = ["", "```json", "```"]
BEFORE = ["", "Here is the card:\n", "Sure! Here are the paper's fields, as JSON:\n\n"]
AFTER = ["", "\nLet me know if you need anything else.", "\n\nThe year is my best estimate."]
PADDING = ["", "\n", "  \n\n"]


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[dict[str, typing.Any], str]:
    """A card, and an answer holding it the way models almost get JSON right."""
    card = draw(CARDS)
    fields = {name: card[name] for name in draw(st.permutations(list(card)))}
    indent = draw(st.sampled_from([None, 2, 4, "\t"]))
    text = json.dumps(fields, indent=indent, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = _trailing_comma(text, text.rindex("]"))  # the list of keywords
    if draw(st.booleans()):
        text = _trailing_comma(text, text.rindex("}"))  # the card
    if fence := draw(st.sampled_from(FENCES)):
        text = f"{fence}\n{text}\n```"
    text = draw(st.sampled_from(BEFORE)) + text + draw(st.sampled_from(AFTER))
    padding = draw(st.sampled_from(PADDING))
    return card, padding + text + padding


def _trailing_comma(text: str, closing: int) -> str:
    """`text` with a comma after the last value before its bracket at `closing`."""
    value_ends = len(text[:closing].rstrip())
    return f"{text[:value_ends]},{text[value_ends:]}"


@pytest.mark.scenario(
    task="structured",
    points=3,
    title="Any mix of code fences, prose and trailing commas is read",
    hint="Read the card whatever surrounds its JSON: a fence with or without a language, "
    "sentences before and after, blank lines, indentation, and trailing commas in objects and "
    "in lists.",
    checks=["structured.near_miss", "structured.card"],
)
def test_near_misses_of_any_kind_are_read(
    client: AppClient, fake_llm: FakeLLM, pytestconfig: pytest.Config
) -> None:
    seed = plugin.settings(pytestconfig).seed
    http = client.sync_http()  # one for every example

    # No shrinking: it would try hundreds of answers on a failing app; the first failing one is
    # reported, as the seed draws it.
    @hypothesis.settings(
        max_examples=20,
        deadline=None,
        database=None,
        print_blob=False,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        report_multiple_bugs=False,
    )
    @hypothesis.seed(seed)
    @hypothesis.given(near_misses())
    def answer_then_card(example: tuple[dict[str, typing.Any], str]) -> None:
        card, answer = example
        cards.model_answers(fake_llm, f.ok(content=answer), then=NOT_A_CARD)
        response = http.post("/api/extract", json={"paper": PAPER})
        reply = Reply(
            response.status_code, response.headers, response.text, 0.0, "POST /api/extract"
        )
        calls = len(fake_llm.calls)
        where = f"the model answered {answer!r} (replay with --seed {seed})"
        assert reply.status == 200, (
            f"{where}; the app answered {reply.status}: {excerpt(reply.text)}"
        )
        assert cards.card_of(reply.json()) == card, (
            f"{where}; the app answered {excerpt(reply.text)}"
        )
        assert calls == 1, f"{where}; the app called the model {calls} times, not once"

    with http, examples.seed_only():
        answer_then_card()


# -- the wrong shape -------------------------------------------------------------------------------

WRONG_SHAPES = {
    "a year that is not a number": {**CARD, "year": "unknown"},
    "a year written as a string": {**CARD, "year": str(CARD["year"])},
    "a year that is true": {**CARD, "year": True},
    "no keywords": {"title": CARD["title"], "year": CARD["year"]},
    "keywords in one string": {**CARD, "keywords": ", ".join(CARD["keywords"])},
    "a keyword that is a number": {**CARD, "keywords": [*CARD["keywords"][:2], 3]},
    "no title": {"year": CARD["year"], "keywords": CARD["keywords"]},
}


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="JSON of the wrong shape is repaired too",
    hint="Check the card before answering with it: a field missing, or of the wrong JSON type (a "
    'year that is not an integer, "2024" and true included; keywords not a list of strings), '
    "makes it invalid, to be repaired like an answer that is not JSON.",
    checks=["structured.checked"],
)
async def test_wrong_shaped_output_is_repaired(client: AppClient, fake_llm: FakeLLM) -> None:
    problems = []
    for what, wrong in WRONG_SHAPES.items():
        cards.model_answers(
            fake_llm,
            f.ok(content=json.dumps(wrong)),
            f.ok(content=json.dumps(CARD)),
            then=NOT_A_CARD,
        )
        reply = await client.request("POST", "/api/extract", json={"paper": PAPER})
        calls = len(fake_llm.calls)
        if calls != 2:
            problems.append(f"after a card with {what}, the app called the model {calls} time(s)")
        elif reply.status != 200 or cards.card_of(reply.json()) != CARD:
            problems.append(
                f"after a card with {what}, then a valid one, the app answered {reply.status}: "
                f"{excerpt(reply.text)}"
            )
    assert not problems, (
        "an invalid card should be repaired with one more call (the model then answers with a "
        f"valid one): {'; '.join(problems)}"
    )


# -- bad requests ---------------------------------------------------------------------------------


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="An unknown paper is a 400 in the error shape",
    hint='Answer a request without a known "paper" with 400 and {"code", "message", '
    '"retryable"}, before asking the model anything.',
    checks=["structured.unknown_paper", "errors.shape"],
)
async def test_an_unknown_paper_is_a_400(client: AppClient, fake_llm: FakeLLM) -> None:
    cards.model_answers(fake_llm, then=NOT_A_CARD)
    for body in ({"paper": "quantum"}, {"title": PAPER}, {"paper": [PAPER]}, PAPER):
        reply = await client.request("POST", "/api/extract", json=body)
        cards.expect_error(reply, 400, f"asked for the card of {body}")
    calls = len(fake_llm.calls)
    assert calls == 0, f"the app called the model {calls} time(s) for papers it does not know"


# -- the model's failures -------------------------------------------------------------------------


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="Extracting a card gets the retries: passing failures retried, rejected ones not",
    hint="POST /api/extract calls the model like POST /api/answer does: retry a 503 or a dropped "
    "connection; a 400 is not retried, and the user gets an error status with the error shape.",
    checks=["retries.statuses", "retries.network", "retries.rejected", "errors.shape"],
    needs=["retries"],
)
async def test_extracting_a_card_gets_the_retries(client: AppClient, fake_llm: FakeLLM) -> None:
    problems = []
    for failure, fault in (("a 503", f.error(503)), ("a dropped connection", f.reset())):
        cards.model_answers(fake_llm, fault, f.ok(content=json.dumps(CARD)), then=NOT_A_CARD)
        reply = await client.request("POST", "/api/extract", json={"paper": PAPER})
        models = [call.model for call in fake_llm.calls]
        if reply.status != 200 or cards.card_of(reply.json()) != CARD or len(models) != 2:
            problems.append(
                f"after {failure}, then the card, the app made {len(models)} call(s) and "
                f"answered {reply.status}: {excerpt(reply.text)}"
            )
        elif models[0] != models[1]:
            problems.append(f"after {failure}, the app asked another model, not the same again")
    cards.model_answers(fake_llm, then=NOT_A_CARD)
    fake_llm.always(f.error(400))
    reply = await client.request("POST", "/api/extract", json={"paper": PAPER})
    models = [call.model for call in fake_llm.calls]
    if max((models.count(model) for model in models), default=0) != 1:
        problems.append(f"a 400 was tried {len(models)} times")
    if reply.status < 400 or not is_error(reply.json()):
        problems.append(
            f"after a 400, the app answered {reply.status} {excerpt(reply.text)}, not an error "
            f"status with {ERROR_SHAPE}"
        )
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="structured",
    points=2,
    title="Extracting a card falls back to the smaller model",
    hint="With the primary model down, POST /api/extract asks FALLBACK_MODEL, as POST /api/answer "
    "does, and answers with its card.",
    checks=["fallback.unavailable"],
    needs=["fallback"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_extracting_a_card_falls_back(
    client: AppClient, fake_llm: FakeLLM, app_settings: AppSettings
) -> None:
    cards.model_answers(fake_llm, then=json.dumps(CARD))
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    reply = await client.request("POST", "/api/extract", json={"paper": PAPER})
    asked = fake_llm.ledger.calls(app_settings.fallback_model)
    assert asked, (
        f"the primary model answered 503 to every attempt and POST /api/extract never asked "
        f"FALLBACK_MODEL; it answered {reply.status}: {excerpt(reply.text)}"
    )
    assert reply.status == 200 and cards.card_of(reply.json()) == CARD, (
        f"the fallback model answered with the card, and POST /api/extract answered "
        f"{reply.status}: {excerpt(reply.text)}"
    )

"""The fake's derived answers: whole sentences of a bounded length, or exactly the tokens asked."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st

from harness.fake_llm import text

PROMPTS = st.text(max_size=200)
MODELS = st.sampled_from(["fake-large", "fake-small"])
SEEDS = st.integers(min_value=0, max_value=2**32)
EXAMPLES = hypothesis.settings(max_examples=300, database=None, deadline=None)


@EXAMPLES
@hypothesis.seed(15)
@hypothesis.given(PROMPTS, MODELS, SEEDS)
def test_a_derived_answer_is_whole_sentences_of_24_to_64_tokens(
    prompt: str, model: str, seed: int
) -> None:
    # An answer that stopped mid-sentence would look like the candidate's app cutting it short.
    answer = text.answer_tokens(prompt, model, seed)
    assert text.SHORTEST <= len(answer) <= text.LONGEST
    assert answer[-1] == "."
    assert text.tokenize("".join(answer)) == answer


@EXAMPLES
@hypothesis.seed(15)
@hypothesis.given(PROMPTS, MODELS, SEEDS, st.integers(min_value=1, max_value=300))
def test_an_answer_of_a_given_length_has_exactly_that_many_tokens_and_extends_the_derived_one(
    prompt: str, model: str, seed: int, tokens: int
) -> None:
    # Scenarios script token counts (a stream of 20 tokens at 0.03 s each): they must stay exact.
    derived = text.answer_tokens(prompt, model, seed)
    asked = text.answer_tokens(prompt, model, seed, tokens)
    assert len(asked) == tokens
    shorter, longer = sorted((derived, asked), key=len)
    assert longer[: len(shorter)] == shorter


def test_the_same_prompt_model_and_seed_give_the_same_answer() -> None:
    first = text.answer_tokens("What about retrieval?", "fake-large", 7)
    assert first == text.answer_tokens("What about retrieval?", "fake-large", 7)
    assert first != text.answer_tokens("What about retrieval?", "fake-large", 8)

"""Deterministic answers: the same prompt, model and seed always give the same tokens.

Tokens are word pieces with their leading space, as a BPE tokenizer cuts English, so that the
concatenation of a stream's deltas is exactly the answer and counts look like a real provider's.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import typing

# How long a derived answer is, in tokens (`answer_tokens`).
SHORTEST, LONGEST = 24, 64

_TOKEN = re.compile(r"\s*[A-Za-z0-9]+|\s*[^A-Za-z0-9\s]|\s+")

_OPENERS = [
    "The abstracts suggest that",
    "In short,",
    "Based on the papers,",
    "The evidence indicates that",
    "Taken together, the studies show that",
]
_SUBJECTS = [
    "retrieval augmentation",
    "the proposed method",
    "sparse attention",
    "the authors' baseline",
    "instruction tuning",
    "the larger model",
    "curriculum training",
]
_VERBS = [
    "improves",
    "reduces",
    "stabilises",
    "does not change",
    "roughly doubles",
    "slightly lowers",
]
_OBJECTS = [
    "accuracy on long documents",
    "latency under load",
    "the error rate",
    "sample efficiency",
    "calibration of answers",
    "the cost per query",
]
_TAILS = [
    "across all three benchmarks.",
    "although the effect is small.",
    "when the context is long.",
    "in the reported experiments.",
    "but only with enough data.",
]


def tokenize(text: str) -> list[str]:
    """Split text into tokens whose concatenation is the text."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def rng_for(*parts: object) -> random.Random:
    """A random generator seeded from the given parts, stable across processes and runs."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def answer_tokens(prompt: str, model: str, seed: int, tokens: int | None = None) -> list[str]:
    """The answer to `prompt` as tokens: whole sentences, 24 to 64 tokens in all, unless `tokens`
    says how many (then it may stop mid-sentence, as a scenario asked).

    A derived answer ends at a sentence's end, so an answer the app shows whole never looks cut
    short by the app: the end nearer a length drawn from 24 to 64, of the sentence ends on either
    side of it, that is within that range (sentences are 13 to 24 tokens long: one always is)."""
    rng = rng_for("answer", seed, model, prompt)
    # Drawn even when `tokens` is given, so that a longer answer extends the shorter one.
    natural = rng.randint(SHORTEST, LONGEST)
    wanted = tokens if tokens is not None else natural
    out: list[str] = []
    ends: list[int] = []
    while len(out) < wanted:
        sentence = " ".join(
            rng.choice(words) for words in (_OPENERS, _SUBJECTS, _VERBS, _OBJECTS, _TAILS)
        )
        out.extend(tokenize((" " if out else "") + sentence))
        ends.append(len(out))
    if tokens is not None:
        return out[:tokens]
    around = [end for end in ends[-2:] if SHORTEST <= end <= LONGEST]
    return out[: min(around, key=lambda end: abs(end - natural))]


def paper_record(prompt: str, seed: int) -> dict[str, typing.Any]:
    """A small JSON-able record of a paper, for structured-output answers."""
    rng = rng_for("record", seed, prompt)
    return {
        "title": f"On {rng.choice(_SUBJECTS)} and {rng.choice(_OBJECTS)}",
        "year": rng.randint(2015, 2026),
        "keywords": rng.sample(["retrieval", "attention", "tuning", "latency", "evaluation"], 3),
    }


def near_miss(json_text: str, style: str) -> str:
    """Wrap valid JSON the way models get it almost right."""
    if style == "fenced":
        return f"```json\n{json_text}\n```"
    if style == "prose":
        return f"Sure! Here is the JSON you asked for:\n{json_text}\nLet me know if you need more."
    if style == "trailing_comma":
        return re.sub(r"(\S)(\s*)([}\]])$", r"\1,\2\3", json_text)
    raise ValueError(f"unknown near-miss style {style!r}")


def record_json(prompt: str, seed: int) -> str:
    return json.dumps(paper_record(prompt, seed), indent=2)

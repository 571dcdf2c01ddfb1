"""`harness.checks.examples.seed_only`: what a scenario's Hypothesis examples are drawn from."""

from __future__ import annotations

import importlib
import string
import sys
import typing
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from harness.checks import examples

# Short words of a near-miss's alphabet, as `test_structured_hidden` draws them.
WORDS = st.text(string.ascii_letters + string.digits, min_size=1, max_size=10)
# What a submission's code (or an editable harness) might hold: loaded, a local module.
PLANTED = "\n".join(f"WORD_{n} = 'planted{n}'" for n in range(200)) + "\n"


def drawn() -> list[str]:
    seen: list[str] = []

    @hypothesis.settings(max_examples=300, database=None, deadline=None)
    @hypothesis.seed(7)
    @hypothesis.given(WORDS)
    def draw(word: str) -> None:
        seen.append(word)

    draw()
    return seen


@pytest.fixture
def planted(tmp_path: Path) -> typing.Iterator[None]:
    (tmp_path / "planted_constants.py").write_text(PLANTED)
    sys.path.insert(0, str(tmp_path))
    importlib.import_module("planted_constants")
    try:
        yield
    finally:
        sys.modules.pop("planted_constants", None)
        sys.path.remove(str(tmp_path))


def test_examples_do_not_depend_on_the_modules_loaded(planted: None) -> None:
    with examples.seed_only():
        with_planted = drawn()
    sys.modules.pop("planted_constants")
    with examples.seed_only():
        without = drawn()
    assert with_planted == without
    assert not any(word.startswith("planted") for word in with_planted)


def test_hypothesis_still_has_the_pool_seed_only_empties(planted: None) -> None:
    # Else seed_only does nothing: an upgrade moved it, and the test above proves nothing.
    assert any(word.startswith("planted") for word in drawn())

"""The requirement table holds the brief, the scenarios and the mutants together.

- every quote of the table is in the brief, and every sentence of the brief's tasks is a
  requirement or is set aside as context, with the reason: the brief cannot grow a sentence nobody
  checks;
- every requirement is checked by a scenario and broken by two mutants written from the brief;
- every mutant is caught by a scenario that checks what it breaks, or says why none can
  (`Mutant.uncaught`, a known blind spot);
- docs/coverage.md is the table as it is now.
"""

from __future__ import annotations

import pytest

import requirement_table as table
from harness.grading.requirements import requirements
from mutants import MUTANTS

# The fewest mutants written from the brief's sentence (`Mutant.from_brief`) a requirement has.
FROM_BRIEF = 2


def test_every_quote_of_the_table_is_in_the_brief() -> None:
    brief = table.flat(table.BRIEF.read_text(encoding="utf-8"))
    missing = [quote for quote in table.quotes() if table.flat(quote) not in brief]
    assert not missing, f"quoted in requirements.toml but not in BRIEF.md: {missing}"


def test_every_sentence_of_the_tasks_is_a_requirement_or_context() -> None:
    quotes = [table.flat(quote) for quote in table.quotes()]
    unaccounted = [
        sentence
        for sentence in table.brief_sentences()
        if not any(quote in sentence for quote in quotes)
    ]
    assert not unaccounted, (
        "sentences of the brief that no requirement quotes, and no context entry sets aside, in "
        f"harness/grading/requirements.toml: {unaccounted}"
    )


def test_requirement_ids_are_area_dot_name() -> None:
    for id, requirement in requirements().items():
        area, _, name = id.partition(".")
        assert area and name and id == id.lower() and " " not in id, id
        assert requirement.says.strip() and requirement.brief.strip(), id


def test_every_requirement_is_checked_by_a_scenario() -> None:
    unchecked = [row.requirement.id for row in table.rows() if not row.scenarios]
    assert not unchecked, f"requirements no scenario checks (checks= in its mark): {unchecked}"


def test_every_requirement_is_broken_by_caught_mutants_written_from_the_brief() -> None:
    counts = {
        row.requirement.id: len([m for m in row.mutants if m.from_brief and row.caught_by(m)])
        for row in table.rows()
    }
    short = {id: count for id, count in counts.items() if count < FROM_BRIEF}
    assert not short, (
        f"requirements broken by fewer than {FROM_BRIEF} mutants written from the brief that a "
        f"scenario checking the requirement catches (Mutant.breaks, from_brief=True): {short}"
    )


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_every_mutant_is_caught_by_a_scenario_checking_what_it_breaks(mutant: table.Mutant) -> None:
    unknown = [id for id in mutant.breaks if id not in requirements()]
    assert mutant.breaks and not unknown, f"breaks= names no known requirement: {mutant.breaks}"
    if mutant.uncaught:  # a known blind spot: it must then fail nothing, and say why
        assert not mutant.expected_failures, f"{mutant.name} is caught: drop its `uncaught`"
        return
    catching = [
        scenario.id
        for scenario in table.scenarios().values()
        if set(scenario.checks) & set(mutant.breaks) and scenario.id in mutant.expected_failures
    ]
    assert catching, (
        f"{mutant.name} breaks {', '.join(mutant.breaks)}, but none of the scenarios it is "
        f"expected to fail checks that: {sorted(mutant.expected_failures)}"
    )


def test_the_coverage_document_is_up_to_date() -> None:
    written = table.DOCUMENT.read_text(encoding="utf-8")
    assert written == table.markdown() + "\n", (
        "docs/coverage.md is out of date: run `python tests/requirement_table.py`"
    )

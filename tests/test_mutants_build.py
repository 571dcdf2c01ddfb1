"""Every mutant builds: its edits still fit the reference, and the result is valid Python.

No server runs here: these only guard against the reference drifting away from the mutants (an
edit that no longer applies) and against a mutant that does not even import.
"""

from __future__ import annotations

import dataclasses
import py_compile
import re
from pathlib import Path

import pytest

from mutants import MUTANTS, Edit, Mutant
from solutions import PACKAGE, REFERENCE, build_mutant, build_solution


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_the_mutant_builds_into_valid_python(tmp_path: Path, mutant: Mutant) -> None:
    reference = build_solution(tmp_path / "reference", REFERENCE) / PACKAGE
    built = build_mutant(tmp_path / "mutant", mutant) / PACKAGE
    for source in sorted(built.rglob("*.py")):
        py_compile.compile(str(source), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    for path in {edit.path for edit in mutant.edits}:  # and each edited file really changed
        assert (built / path).read_text() != (reference / path).read_text(), path


def test_mutants_have_unique_snake_case_names() -> None:
    names = [mutant.name for mutant in MUTANTS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) for name in names)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_the_mutant_says_what_mistake_it_is(mutant: Mutant) -> None:
    assert mutant.description.strip() and "\n" not in mutant.description
    assert mutant.edits
    assert all(edit.old and edit.old != edit.new for edit in mutant.edits)
    assert isinstance(mutant.expected_failures, frozenset)


@pytest.mark.parametrize(
    "old", ["this text is in no file of the reference\n", "import typing\n"], ids=["0", "2+"]
)
def test_an_edit_that_does_not_fit_the_reference_fails_loudly(tmp_path: Path, old: str) -> None:
    # The first edit makes `import typing` appear twice, so the second fits no place exactly.
    drifted = Mutant(
        "drifted_mutant",
        "An edit written against an older reference.",
        (
            Edit("fallback.py", "import typing\n", "import typing\nimport typing\n"),
            Edit("fallback.py", old, "replaced\n"),
        ),
    )
    with pytest.raises(ValueError, match=r"drifted_mutant.*fallback\.py"):
        build_mutant(tmp_path, drifted)


def test_an_edit_to_a_missing_file_fails_loudly(tmp_path: Path) -> None:
    lost = dataclasses.replace(MUTANTS[0], name="lost_mutant", edits=(Edit("gone.py", "a", "b"),))
    with pytest.raises(ValueError, match=r"lost_mutant.*gone\.py"):
        build_mutant(tmp_path, lost)

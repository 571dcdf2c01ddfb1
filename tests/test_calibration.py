"""Calibration: the proof that the scenarios grade fairly.

- the reference solution scores full marks, in both app modes;
- the starter scores only what its gaps leave it;
- each mutant (the reference with one realistic mistake, `tests/mutants.py`) fails exactly the
  scenarios listed for it, no more (no collateral points lost) and no fewer (the flaw is caught);
- every scenario is failed by at least one mutant, so none of them passes everything.

Each grade runs ``pytest scenarios`` in a child process, as a user would, and reads its JSON report.
"""

from __future__ import annotations

import subprocess
import typing
import sys
from pathlib import Path

import pytest

from grading_runs import SCENARIOS, build, grade, not_passed
from mutants import MUTANTS
from solutions import ROOT

# What the starter already does right: it never sends a rejected request to another model (it has
# no other model), and its two tabs asking the same question already share one call.
STARTER_PASSES = {"rejected_requests_do_not_fall_back", "a_shared_answer_survives_one_tab_closing"}


def scenario_ids() -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", str(SCENARIOS), "--collect-only", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        line.split("::")[1].split("[")[0].removeprefix("test_")
        for line in listed.splitlines()
        if "::" in line
    }


@pytest.mark.parametrize("mode", ["thread", "subprocess"])
def test_the_reference_scores_full_marks(tmp_path: Path, mode: str) -> None:
    report = grade(build("reference", tmp_path), mode=mode)
    assert not_passed(report) == {}
    assert report["score"]["percentage"] == 100
    assert report["status"] == "graded"


def test_the_starter_scores_only_what_its_gaps_allow(tmp_path: Path) -> None:
    report = grade(build("starter", tmp_path))
    passed = {s["id"] for s in report["scenarios"] if s["status"] == "passed"}
    assert passed == STARTER_PASSES
    assert set(not_passed(report).values()) == {"failed"}  # no harness errors, no timeouts


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_each_mutant_fails_exactly_the_scenarios_that_target_its_flaw(
    tmp_path: Path, mutant: typing.Any
) -> None:
    report = grade(build(mutant.name, tmp_path))
    assert not_passed(report) == {scenario: "failed" for scenario in mutant.expected_failures}


def test_every_scenario_is_failed_by_some_mutant() -> None:
    caught = set().union(*(mutant.expected_failures for mutant in MUTANTS))
    ids = scenario_ids()
    assert caught <= ids, f"mutants expect scenarios that do not exist: {caught - ids}"
    assert ids - caught == set(), "these scenarios fail no mutant, so nothing shows they work"

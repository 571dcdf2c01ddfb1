"""Calibration: the proof that the scenarios grade fairly.

- the reference solution scores full marks, in both app modes;
- the starter scores only what its gaps leave it;
- each mutant (the reference with one realistic mistake, `tests/mutants/`) fails exactly the
  scenarios listed for it, no more (no collateral points lost) and no fewer (the flaw is caught);
- every scenario is failed by at least one mutant, so none of them passes everything.

The reference is graded by ``pytest scenarios`` in thread mode, as a candidate would; all the
solutions together by one ``faultfirst grade`` batch, two at a time, as an interviewer would.
Both grade every task (``--tasks all``), not only the core four a grade takes by default.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from grading_runs import SCENARIOS, SOLUTIONS, build, grade, not_passed
from mutants import MUTANTS
from solutions import ROOT

# What the starter already does right: it never sends a rejected request to another model (it has
# no other model), and its two tabs asking the same question already share one call.
STARTER_PASSES = {"rejected_requests_do_not_fall_back", "a_shared_answer_survives_one_tab_closing"}


def scenario_ids() -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", str(SCENARIOS), "--collect-only", "-q", "--tasks", "all"],
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


def test_the_reference_scores_full_marks_in_thread_mode(tmp_path: Path) -> None:
    report = grade(build("reference", tmp_path), mode="thread", tasks="all")
    assert not_passed(report) == {}
    assert report["score"]["percentage"] == 100
    assert report["status"] == "graded"


def test_a_batch_of_every_solution_grades_each_as_its_flaw_deserves(tmp_path: Path) -> None:
    """Reference 100%, the starter only what its gaps allow, each mutant exactly its listed
    scenarios failed, and nothing but "failed" among what did not pass (no timeouts, no harness
    errors): through `faultfirst grade`, in subprocess mode, two submissions at once.

    Every solution is graded on every task, but a mutant whose flaw can reach only some tasks
    (`Mutant.reaches`) on those alone: one batch for each set of tasks."""
    batches: dict[tuple[str, ...] | None, list[str]] = {}
    reaches = {mutant.name: mutant.reaches for mutant in MUTANTS}
    for name in SOLUTIONS:
        batches.setdefault(reaches.get(name), []).append(name)
    rows: dict[str, typing.Any] = {}
    for tasks, names in batches.items():
        rows |= _grade_batch(names, ",".join(tasks) if tasks else "all", tmp_path)
    assert sorted(rows) == sorted(SOLUTIONS)
    expected = {mutant.name: set(mutant.expected_failures) for mutant in MUTANTS}
    expected["reference"] = set()
    wrong = {}
    for name, row in rows.items():
        report = row["grade"]
        if name == "starter":
            passed = {s["id"] for s in report["scenarios"] if s["status"] == "passed"}
            statuses = set(not_passed(report).values())
            if passed != STARTER_PASSES or statuses != {"failed"}:
                wrong[name] = {"passed": sorted(passed), "other statuses": sorted(statuses)}
        elif not_passed(report) != {scenario: "failed" for scenario in expected[name]}:
            wrong[name] = {
                "expected": sorted(expected[name]),
                "got": not_passed(report),
                "unexpected": _surprises(report, expected[name]),
            }
    if wrong:  # in full: pytest would cut an assertion's diff short, reasons and all
        pytest.fail(
            "solutions graded otherwise than their flaws deserve:\n" + json.dumps(wrong, indent=2)
        )
    assert rows["reference"]["percentage"] == 100


def _surprises(report: dict[str, typing.Any], expected: set[str]) -> dict[str, str]:
    """Why each scenario graded otherwise than expected went as it did: a failure's reason (what
    a flake says about itself), or that an expected failure passed."""
    surprises = {}
    for scenario in report["scenarios"]:
        failed, meant_to = scenario["status"] != "passed", scenario["id"] in expected
        if failed != meant_to:
            reason = scenario["reason"] if failed else "its flaw went uncaught"
            surprises[scenario["id"]] = f"{scenario['status']} in {scenario['duration']}s: {reason}"
    return surprises


def _grade_batch(names: list[str], tasks: str, folder: Path) -> dict[str, typing.Any]:
    """The comparison table's rows of one `faultfirst grade` batch of `names` on `tasks`."""
    folders = [_solution_folder(name, folder / name) for name in names]
    table = folder / f"table-{tasks}.json"
    command = [sys.executable, "-m", "harness.cli", "grade", *map(str, folders), "-j", "2"]
    command += ["--tasks", tasks, "--table-json", str(table)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    return {row["submission"]: row for row in json.loads(table.read_text())["submissions"]}


def _solution_folder(name: str, destination: Path) -> Path:
    """A folder of its own for each solution, named after it (the batch table's row name)."""
    folder = build(name, destination)
    if folder != destination:  # the starter is built in place
        shutil.copytree(folder / "exercise_app", destination / "exercise_app")
    return destination


def test_every_scenario_is_failed_by_some_mutant() -> None:
    caught = set().union(*(mutant.expected_failures for mutant in MUTANTS))
    ids = scenario_ids()
    assert caught <= ids, f"mutants expect scenarios that do not exist: {caught - ids}"
    assert ids - caught == set(), "these scenarios fail no mutant, so nothing shows they work"

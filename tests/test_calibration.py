"""Calibration: the proof that the scenarios grade fairly.

- the reference solution scores full marks, in both app modes;
- the starter scores only what its gaps leave it;
- each mutant (the reference with one realistic mistake, `tests/mutants/`) fails exactly the
  scenarios listed for it, no more (no collateral points lost) and no fewer (the flaw is caught);
- every scenario is failed by at least one mutant, so none of them passes everything.

The reference and the starter are graded on every task by one ``faultfirst grade`` batch, as an
interviewer would (subprocess mode, the app's limits), and the reference by ``pytest scenarios``
in thread mode, as a candidate would. The mutants, a few hundred, are graded in thread mode by
`calibrate.py`, many to a process, in chunks both xdist workers share, each on every scenario of
its own tasks (`own_tasks`: those of the requirements it breaks) and on the scenarios of other
tasks it must fail. The same grade on every task, for every mutant, is
``python benchmarks/calibration.py``: too long for CI, run before a change to the scenarios
lands.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import requirement_table
from calibrate import elsewhere, entry, mismatch, own_tasks, surprises
from grading_runs import build, grade, not_passed
from harness.hosting.launcher import SCENARIO_SETTINGS
from mutants import MUTANTS, Mutant
from solutions import ROOT

# What the starter already does right: it never sends a rejected request to another model (it has
# no other model), its two tabs asking the same question already share one call, it never retries,
# so no retry's wait holds anybody up, and it never stops asking the primary, so it is back to it
# as soon as the primary answers again.
STARTER_PASSES = {
    "rejected_requests_do_not_fall_back",
    "a_shared_answer_survives_one_tab_closing",
    "a_retry_s_wait_does_not_hold_up_others",
    "the_breaker_closes_once_the_primary_is_back",
}
CHUNKS = 24  # the mutants' grades, in this many tests: enough for two workers to share evenly
# Grading processes a chunk runs at once, and scenarios at once in each grade. A grade mostly waits
# (a model thinking, a backoff), and each grades its mutants one after another, with a pause
# between two (pytest's start, a lane's last scenario): at one process of three scenarios, the
# two workers kept the two cores 44% busy. Two processes of three: 72%, the calibration a third
# quicker (383 s to 253 s, 2026-12-02), and every mutant still exact, also with a third process
# spinning on a core (290 s), as on a machine half as quick.
PROCESSES = 2
CONCURRENCY = 3
TESTS = Path(__file__).resolve().parent


def chunks() -> list[list[Mutant]]:
    """The mutants in `CHUNKS` lists of about the same grading time, in the order of their
    tasks within each."""
    loads: list[tuple[float, list[Mutant]]] = [(0.0, []) for _ in range(CHUNKS)]
    for mutant in sorted(MUTANTS, key=lambda m: (-_cost(m), m.name)):
        load, chunk = min(loads, key=lambda pair: pair[0])
        loads.remove((load, chunk))
        loads.append((load + _cost(mutant), chunk + [mutant]))
    return [sorted(chunk, key=lambda m: (own_tasks(m), m.name)) for _, chunk in loads if chunk]


def _cost(mutant: Mutant) -> float:
    """Roughly, the scenarios its grade runs: about a second each."""
    tasks = set(own_tasks(mutant))
    scenarios = requirement_table.scenarios().values()
    own = sum(1.0 for scenario in scenarios if "all" in tasks or scenario.task in tasks)
    return own + len(elsewhere(mutant))


def test_the_reference_scores_full_marks_in_thread_mode(tmp_path: Path) -> None:
    report = grade(build("reference", tmp_path), mode="thread", tasks="all")
    assert not_passed(report) == {}
    assert report["score"]["percentage"] == 100
    assert report["status"] == "graded"


def test_faultfirst_grade_grades_the_reference_and_the_starter_as_they_deserve(
    tmp_path: Path,
) -> None:
    """Through `faultfirst grade`, in subprocess mode with the app's limits, two at once, every
    task: the reference 100%, the starter only what its gaps allow."""
    folders = [_solution_folder(name, tmp_path / name) for name in ("reference", "starter")]
    table = tmp_path / "table.json"
    command = [sys.executable, "-m", "harness.cli", "grade", *map(str, folders), "-j", "2"]
    command += ["--tasks", "all", "--table-json", str(table)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {row["submission"]: row for row in json.loads(table.read_text())["submissions"]}
    reference = rows["reference"]["grade"]
    assert not_passed(reference) == {}, surprises(reference, set())
    starter = rows["starter"]["grade"]
    passed = {s["id"] for s in starter["scenarios"] if s["status"] == "passed"}
    assert passed == STARTER_PASSES, {"passed": sorted(passed), **surprises(starter, set())}
    assert set(not_passed(starter).values()) == {"failed"}, not_passed(starter)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_each_mutant_fails_exactly_the_scenarios_its_flaw_deserves(
    tmp_path: Path, chunk: int
) -> None:
    """Each mutant of the chunk, on its own tasks: exactly its expected scenarios failed, and
    nothing but "failed" among what did not pass (no timeouts, no harness errors)."""
    mutants = chunks()[chunk]
    command = [sys.executable, str(TESTS / "calibrate.py"), "--out", str(tmp_path)]
    command += ["--concurrency", str(CONCURRENCY)]
    shares = [[entry(m) for m in mutants[index::PROCESSES]] for index in range(PROCESSES)]
    graders = [
        subprocess.Popen(
            command + share, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        for share in shares
        if share
    ]
    for grader in graders:
        output, _ = grader.communicate(timeout=1500)
        assert grader.returncode == 0, output[-3000:]
    wrong = {}
    for mutant in mutants:
        report = json.loads((tmp_path / f"{mutant.name}.json").read_text())
        if (problem := mismatch(report, set(mutant.expected_failures))) is not None:
            wrong[mutant.name] = problem
    if wrong:  # in full: pytest would cut an assertion's diff short, reasons and all
        pytest.fail(
            "mutants graded otherwise than their flaws deserve:\n" + json.dumps(wrong, indent=2)
        )


def test_the_chunks_hold_every_mutant_once() -> None:
    graded = [mutant.name for chunk in chunks() for mutant in chunk]
    assert sorted(graded) == sorted(mutant.name for mutant in MUTANTS)


def test_every_scenario_is_failed_by_some_mutant() -> None:
    caught = set().union(*(mutant.expected_failures for mutant in MUTANTS))
    ids = set(requirement_table.scenarios())
    assert caught <= ids, f"mutants expect scenarios that do not exist: {caught - ids}"
    assert ids - caught == set(), "these scenarios fail no mutant, so nothing shows they work"


def test_the_breaker_opens_only_in_the_scenarios_that_check_it() -> None:
    """Elsewhere, requests failing at once would open it at a moment the scheduler picks: a mutant
    giving the fallback one attempt failed `passing_failures_are_retried` once in CI, when the last
    three of its eight requests asked after five had failed, and passed it every other run."""
    out_of_reach = 100  # calls to the primary: the most any scenario makes is a few dozen
    default = SCENARIO_SETTINGS["BREAKER_FAILURES"]
    assert int(default) >= out_of_reach
    for scenario in requirement_table.scenarios().values():
        failures = int(dict(scenario.settings).get("BREAKER_FAILURES", default))
        opens = "fallback.breaker" in scenario.checks
        assert (failures < out_of_reach) == opens, f"{scenario.id}: BREAKER_FAILURES={failures}"


def _solution_folder(name: str, destination: Path) -> Path:
    """A folder of its own for each solution, named after it (the batch table's row name)."""
    folder = build(name, destination)
    if folder != destination:  # the starter is built in place
        shutil.copytree(folder / "exercise_app", destination / "exercise_app")
    return destination

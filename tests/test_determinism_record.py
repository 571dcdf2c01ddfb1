"""`benchmarks/determinism.py --record` and `--summary`: rounds recorded in several sittings are
reported together, but only those that graded the code as it is now, the same way."""

from __future__ import annotations

import argparse
import importlib.util
import json
import typing
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "determinism.py"


@pytest.fixture(scope="module")
def determinism() -> typing.Any:
    spec = importlib.util.spec_from_file_location("determinism", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def options(**changes: object) -> argparse.Namespace:
    chosen = {"mode": "thread", "own_tasks": True, "tasks": "", "jobs": 2, "busy": True}
    chosen["concurrency"] = "2"
    return argparse.Namespace(**{**chosen, **changes})


def test_rounds_of_other_code_or_another_way_are_left_out(
    determinism: typing.Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, code = tmp_path / "rounds.jsonl", determinism.code_digest()
    same = {"reference": "165/165 [none failed]", "starter": starter_as_expected(determinism)}
    determinism._record(record, code, same, options())
    determinism._record(record, code, same, options(jobs=3))
    other_way = {"reference": "163/165 [x:failed]"}
    determinism._record(record, code, other_way, options(own_tasks=False))
    with record.open("a") as lines:  # a round of code since changed
        old = {
            "code": "0" * 16,
            "way": "thread mode, each on its own tasks",
            "load": "",
            "ended": "",
            "outcomes": {"reference": "160/165 [y:failed]"},
        }
        lines.write(json.dumps(old) + "\n")

    status = determinism._summary(record, ["reference", "starter"], options())

    printed = capsys.readouterr().out
    assert status == 0
    assert "2 rounds recorded" in printed and "(2 of every solution)" in printed
    assert "2 at a time, a core spinning; 3 at a time, a core spinning" in printed
    assert "x2  165/165 [none failed]" in printed and f"x2  {same['starter']}" in printed
    assert "against the calibration: 2 rounds of 2 solutions, 0 outcomes otherwise" in printed


def starter_as_expected(determinism: typing.Any) -> str:
    failed = sorted(determinism._expected(["starter"])["starter"])
    return "6/165 [" + ", ".join(f"{id}:failed" for id in failed) + "]"


def test_a_round_that_grades_a_solution_otherwise_than_the_calibration_fails_the_summary(
    determinism: typing.Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same in every round is not enough: a mutant that always passes what its flaw should
    fail, or fails it by a timeout, is wrong every time."""
    mutant = next(m for m in determinism.MUTANTS if len(m.expected_failures) == 1)
    [scenario] = mutant.expected_failures
    outcomes = {
        f"{mutant.name}": "10/12 [none failed]",  # its flaw went unseen
        "reference": f"163/165 [{scenario}:timed out]",  # nothing but "failed" is expected
        "starter": starter_as_expected(determinism),
    }
    record, code = tmp_path / "rounds.jsonl", determinism.code_digest()
    determinism._record(record, code, outcomes, options())

    status = determinism._summary(record, [mutant.name, "reference", "starter"], options())

    printed = capsys.readouterr().out
    assert status == 1
    assert "against the calibration: 1 rounds of 3 solutions, 2 outcomes otherwise" in printed
    assert f"{mutant.name}: 10/12 [none failed]" in printed
    assert f"reference: 163/165 [{scenario}:timed out]" in printed


def test_a_solution_graded_otherwise_in_another_sitting_is_reported(
    determinism: typing.Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "rounds.jsonl"
    code = determinism.code_digest()
    determinism._record(record, code, {"reference": "165/165 [none failed]"}, options())
    determinism._record(record, code, {"reference": "163/165 [x:failed]"}, options())

    status = determinism._summary(record, ["reference"], options())

    assert status == 1
    assert "VARIED           reference" in capsys.readouterr().out


def test_no_round_of_this_code_and_way_is_a_failure_not_a_varied_list(
    determinism: typing.Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, code = tmp_path / "rounds.jsonl", determinism.code_digest()
    determinism._record(record, code, {"reference": "165/165 [none failed]"}, options(jobs=3))
    # One round, run another way: nothing to compare, which is no proof.
    status = determinism._summary(record, ["reference"], options(own_tasks=False))

    printed = capsys.readouterr().out
    assert status == 1
    assert printed.startswith("no rounds recorded for code") and "VARIED" not in printed


def test_a_round_run_outside_the_proofs_conditions_is_listed_apart(
    determinism: typing.Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, code = tmp_path / "rounds.jsonl", determinism.code_digest()
    determinism._record(record, code, {"reference": "165/165 [none failed]"}, options())
    determinism._record(record, code, {"reference": "163/165 [x:failed]"}, options())
    lines = record.read_text().splitlines()
    overloaded = {**json.loads(lines[1]), "outside": "with other tests beside it"}
    record.write_text(lines[0] + "\n" + json.dumps(overloaded) + "\n")

    status = determinism._summary(record, ["reference"], options())

    printed = capsys.readouterr().out
    assert status == 0 and "1 rounds recorded" in printed and "VARIED" not in printed
    assert "not counted: the round ended" in printed and "with other tests beside it" in printed
    assert "reference: 163/165 [x:failed]" in printed

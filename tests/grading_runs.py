"""Grade a solution the way a user does (``pytest scenarios --faultfirst-submission ...``), in a
child process, and read its JSON report. Used by the calibration tests and
`benchmarks/determinism.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

from solutions import REFERENCE, ROOT, STARTER, build_mutant, build_solution
from mutants import MUTANTS

SCENARIOS = ROOT / "scenarios"
SOLUTIONS = ["reference", "starter"] + [mutant.name for mutant in MUTANTS]


def build(name: str, destination: Path) -> Path:
    """The folder of the solution called `name`: reference, starter, or a mutant's name."""
    if name == "starter":
        return STARTER.parent
    if name == "reference":
        return build_solution(destination, REFERENCE)
    [mutant] = [mutant for mutant in MUTANTS if mutant.name == name]
    return build_mutant(destination, mutant)


def grade(
    submission: Path,
    *,
    mode: str = "thread",
    seed: int = 0,
    tasks: str | None = None,
    timeout: float = 600,
    concurrency: str = "auto",
) -> dict[str, typing.Any]:
    """The grade report of `submission` (JSON, see docs/reports.md), for `tasks` as ``--tasks``
    takes them (default: the core four), `concurrency` scenarios at once."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "grade.json"
        command = [sys.executable, "-m", "pytest", str(SCENARIOS), "-q", "-p", "no:randomly"]
        command += ["--faultfirst-submission", str(submission), "--faultfirst-app-mode", mode]
        command += ["--faultfirst-seed", str(seed), "--faultfirst-json", str(report)]
        command += ["--faultfirst-concurrency", concurrency]
        if tasks is not None:
            command += ["--faultfirst-tasks", tasks]
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise RuntimeError(f"the grade wrote no report:\n{run.stdout}\n{run.stderr}")
        data: dict[str, typing.Any] = json.loads(report.read_text())
        return data


def not_passed(report: dict[str, typing.Any]) -> dict[str, str]:
    """Scenario id -> status, for every scenario that did not pass."""
    return {s["id"]: s["status"] for s in report["scenarios"] if s["status"] != "passed"}

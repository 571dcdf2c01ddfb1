"""The full calibration: every mutant graded on every task, held to its expected failures.

    python benchmarks/calibration.py [--jobs 2] [--only NAMES] [--tasks all] [--show]

CI grades each mutant on its own tasks only (`tests/test_calibration.py`); this grades each on
every task (or on the tasks its edits can reach, `Mutant.reaches`), which shows a flaw that
costs points in a task nobody expected. A mutant graded otherwise than expected is printed with
what it failed and why, and the script exits with status 1. `--show` prints every mutant's
failures, as `expected_failures` would list them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from calibrate import mismatch, outside  # noqa: E402
from grading_runs import not_passed  # noqa: E402
from mutants import MUTANTS, Mutant  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="grading processes at once")
    parser.add_argument("--only", help="comma-separated mutants (default: all)")
    parser.add_argument("--tasks", default="all", help="the tasks to grade (default: all)")
    parser.add_argument("--show", action="store_true", help="print every mutant's failures")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only.split(",")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        shards = [chosen[index :: args.jobs] for index in range(args.jobs)]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda shard: _grade(shard, args.tasks, out), shards))
        reports = {m.name: json.loads((out / f"{m.name}.json").read_text()) for m in chosen}
    wrong = 0
    for mutant in chosen:
        report = reports[mutant.name]
        problem = mismatch(report, set(mutant.expected_failures))
        if args.show:
            print(f"{mutant.name}: {sorted(not_passed(report))}")
        if problem is not None:
            wrong += 1
            print(f"MISMATCH {mutant.name}: {json.dumps(problem, indent=2)}")
    minutes = (time.monotonic() - started) / 60
    print(
        f"{len(chosen) - wrong} of {len(chosen)} mutants failed exactly their expected "
        f"scenarios ({args.tasks} tasks, {args.jobs} at a time, {minutes:.1f} min)"
    )
    return 1 if wrong else 0


def _grade(mutants: list[Mutant], tasks: str, out: Path) -> None:
    entries = [_entry(mutant, tasks) for mutant in mutants]
    command = [sys.executable, str(TESTS / "calibrate.py"), "--out", str(out), *entries]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=TESTS.parent)


def _entry(mutant: Mutant, tasks: str) -> str:
    """The mutant graded on `tasks` (or the tasks its edits can reach), and on the scenarios
    elsewhere it must fail: a scenario that is not graded cannot show it was failed."""
    chosen = mutant.reaches or tuple(tasks.split(","))
    return f"{mutant.name}:{','.join(chosen)}:{','.join(outside(mutant, chosen))}"


if __name__ == "__main__":
    sys.exit(main())

"""Grade the reference, the starter and every mutant many times, and show that each always gets
the same result: the same scenarios passed, the same score.

    python benchmarks/determinism.py --rounds 20 --jobs 1 --busy

`--busy` keeps a spinning process on the other core (the machine is assumed to have two) while
grading one submission at a time. `--jobs 2` grades two at once instead, each keeping the other's
core busy. A solution whose results differ between rounds is listed with every variant seen, and
the script exits with status 1.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import multiprocessing
import sys
import tempfile
import time
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from grading_runs import SOLUTIONS, build, grade, not_passed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1, help="grades run at once (default: 1)")
    parser.add_argument("--busy", action="store_true", help="keep one more core busy spinning")
    parser.add_argument("--mode", choices=("thread", "subprocess"), default="thread")
    parser.add_argument("--only", help="comma-separated solutions (default: all)")
    parser.add_argument(
        "--tasks", help="the tasks to grade, as `--tasks` takes them (default: the core four)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every grade as it ends")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else SOLUTIONS
    outcomes: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in names}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder, _spinning(args.busy):
        folders = {name: build(name, Path(folder) / name) for name in names}
        jobs = [(name, round_) for round_ in range(args.rounds) for name in names]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = pool.map(
                lambda job: (job[0], _outcome(folders[job[0]], args.mode, args.tasks)), jobs
            )
            for done, (name, outcome) in enumerate(results, 1):
                outcomes[name][outcome] += 1
                if args.verbose:
                    print(f"{done}/{len(jobs)} {name}: {outcome}", flush=True)
                else:
                    print(f"\r{done}/{len(jobs)} grades", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return _report(outcomes, args, time.monotonic() - started)


def _outcome(folder: Path, mode: str, tasks: str | None) -> str:
    report = grade(folder, mode=mode, tasks=tasks)
    score = report["score"]
    failures = ", ".join(f"{id}:{status}" for id, status in sorted(not_passed(report).items()))
    return f"{score['earned']}/{score['possible']} [{failures or 'none failed'}]"


def _report(
    outcomes: dict[str, collections.Counter[str]], args: argparse.Namespace, took: float
) -> int:
    load = f"{args.jobs} at a time" + (", another core spinning" if args.busy else "")
    tasks = f", tasks {args.tasks}" if args.tasks else ""
    print(f"{args.rounds} rounds, {args.mode} mode{tasks}, {load}, {took / 60:.1f} min")
    varied = 0
    for name, seen in outcomes.items():
        if len(seen) == 1:
            [(outcome, count)] = seen.items()
            print(f"  same every time  {name:<32} x{count}  {outcome}")
        else:
            varied += 1
            print(f"  VARIED           {name}")
            for outcome, count in seen.most_common():
                print(f"      x{count}  {outcome}")
    print(f"{len(outcomes) - varied} of {len(outcomes)} solutions got the same result every run")
    return 1 if varied else 0


@contextlib.contextmanager
def _spinning(busy: bool) -> typing.Iterator[None]:
    if not busy:
        yield
        return
    spinner = multiprocessing.Process(target=_spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        spinner.terminate()
        spinner.join()


def _spin() -> None:
    while True:
        pass


if __name__ == "__main__":
    sys.exit(main())

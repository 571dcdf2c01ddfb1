"""Grade the reference, the starter and every mutant many times, and show that each always gets
the same result: the same scenarios passed, the same score.

    python benchmarks/determinism.py --rounds 20 --jobs 2 --busy [--tasks all | --own-tasks]
                                     [--only NAMES] [--mode thread|subprocess] [--record FILE]
    python benchmarks/determinism.py --summary FILE [--own-tasks | --tasks LIST] [--mode ...]

Each round grades every solution chosen (`--only`, default all) with `tests/calibrate.py`, `--jobs`
grading processes at once, on `--tasks` (default: the core four), or with `--own-tasks` each
mutant on the tasks CI grades it on (`tests/calibrate.own_tasks`) and the reference and
the starter on every task. `--busy` keeps one more process spinning on a core. A solution whose
results differ between rounds is listed with every variant seen, and the script exits with
status 1.

With `--record FILE`, each round's results are added to FILE (a JSON line a round) as soon as the
round ends, tagged with a digest of the code that decides a grade (the harness, the scenarios, the
starter, the reference, the mutants) and with how the round was run. `--summary FILE` reports
every round FILE holds for the code as it is now and the same way of running, whichever sessions
ran them: twenty rounds of every solution take hours on two cores, more than one sitting.
A round run outside the proof's conditions (other work beside it, say) is marked in FILE with
`"outside": "why"`: `--summary` lists it apart, with how it differs, and does not count it.
With `--own-tasks`, it also checks every counted round against the calibration: the reference
failing nothing, the starter all but what it already does right, each mutant exactly the
scenarios it is expected to fail among those its own tasks grade.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))
# What decides a grade: two rounds are comparable when none of it changed between them.
GRADED = ("harness", "scenarios", "exercise_app", "tests/reference", "tests/mutants") + tuple(
    f"tests/{name}.py" for name in ("calibrate", "grading_runs", "solutions")
)

from grading_runs import SOLUTIONS, not_passed  # noqa: E402
from mutants import MUTANTS  # noqa: E402
from calibrate import own_tasks  # noqa: E402
import requirement_table  # noqa: E402
from test_calibration import STARTER_PASSES  # noqa: E402

from harness import vocabulary  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1, help="grading processes at once")
    parser.add_argument("--mode", choices=("thread", "subprocess"), default="thread")
    parser.add_argument(
        "--concurrency",
        default="auto",
        help="scenarios at once in each grade (default: auto, as faultfirst grade -j JOBS: "
        "two per core, shared among the jobs)",
    )
    parser.add_argument("--busy", action="store_true", help="keep one more core busy spinning")
    parser.add_argument("--only", help="comma-separated solutions (default: all)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--tasks", default="streaming,cancellation,retries,fallback")
    chosen.add_argument("--own-tasks", action="store_true", help="each mutant on its own tasks")
    parser.add_argument("--verbose", action="store_true", help="print every round as it ends")
    parser.add_argument("--record", type=Path, help="add each round's results to this file")
    parser.add_argument("--summary", type=Path, help="report the rounds this file holds")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else SOLUTIONS
    if args.summary is not None:
        return _summary(args.summary, names, args)
    entries = [f"{name}:{_tasks(name, args)}" for name in names]
    outcomes: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in names}
    started, code = time.monotonic(), code_digest()  # the code as it is when the rounds start
    with _spinning(args.busy):
        for round_ in range(1, args.rounds + 1):
            results = _round(entries, args.jobs, args.mode, _concurrency(args))
            if args.record is not None:
                _record(args.record, code, results, args)
            for name, outcome in results.items():
                outcomes[name][outcome] += 1
                if args.verbose:
                    print(f"round {round_} {name}: {outcome}", flush=True)
            print(f"\r{round_}/{args.rounds} rounds", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    how = f"{args.rounds} rounds, {_way(args)}, {_load(args)}"
    return _report(outcomes, how, time.monotonic() - started)


def _tasks(name: str, args: argparse.Namespace) -> str:
    if not args.own_tasks:
        return str(args.tasks)
    mutant = next((m for m in MUTANTS if m.name == name), None)
    return ",".join(own_tasks(mutant)) if mutant is not None else "all"


def _concurrency(args: argparse.Namespace) -> str:
    if args.concurrency != "auto":
        return str(args.concurrency)
    return str(max(1, vocabulary.auto_concurrency() // args.jobs))


def _round(entries: list[str], jobs: int, mode: str, concurrency: str) -> dict[str, str]:
    """Every entry graded once, `jobs` processes at once, each `concurrency` scenarios at once:
    each solution's outcome."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        shards = [entries[index::jobs] for index in range(jobs)]
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            list(pool.map(lambda shard: _grade(shard, out, mode, concurrency), shards))
        names = [entry.split(":")[0] for entry in entries]
        return {name: _outcome(json.loads((out / f"{name}.json").read_text())) for name in names}


def _grade(entries: list[str], out: Path, mode: str, concurrency: str) -> None:
    if entries:
        command = [sys.executable, str(TESTS / "calibrate.py"), "--out", str(out)]
        command += ["--app-mode", mode, "--concurrency", concurrency, *entries]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=TESTS.parent)


def _outcome(report: dict[str, typing.Any]) -> str:
    score = report["score"]
    failures = ", ".join(f"{id}:{status}" for id, status in sorted(not_passed(report).items()))
    return f"{score['earned']}/{score['possible']} [{failures or 'none failed'}]"


def _report(
    outcomes: dict[str, collections.Counter[str]], how: str, took: float | None = None
) -> int:
    print(how if took is None else f"{how}, {took / 60:.1f} min")
    varied = 0
    for name, seen in outcomes.items():
        if len(seen) == 1:
            [(outcome, count)] = seen.items()
            print(f"  same every time  {name:<40} x{count}  {outcome}")
        else:
            varied += 1
            print(f"  VARIED           {name}")
            for outcome, count in seen.most_common():
                print(f"      x{count}  {outcome}")
    print(f"{len(outcomes) - varied} of {len(outcomes)} solutions got the same result every run")
    return 1 if varied else 0


def _way(args: argparse.Namespace) -> str:
    """How a round grades, as much as two rounds must share to be compared."""
    tasks = "each on its own tasks" if args.own_tasks else f"tasks {args.tasks}"
    way = f"{args.mode} mode, {tasks}"
    concurrency = _concurrency(args)
    return way if concurrency == "1" else f"{way}, {concurrency} scenarios at once"


def _load(args: argparse.Namespace) -> str:
    return f"{args.jobs} at a time" + (", a core spinning" if args.busy else "")


def code_digest() -> str:
    """A digest of every file that decides a grade: two rounds of the same digest graded the same
    code, whenever they ran."""
    digest = hashlib.sha256()
    for name in GRADED:
        top = ROOT / name
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _record(file: Path, code: str, results: dict[str, str], args: argparse.Namespace) -> None:
    line = {
        "code": code,
        "way": _way(args),
        "load": _load(args),
        "ended": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "outcomes": results,
    }
    with file.open("a") as records:
        records.write(json.dumps(line) + "\n")


def _summary(file: Path, names: list[str], args: argparse.Namespace) -> int:
    """Every recorded round of the code as it is now, graded the same way, as one report.

    A round whose record says it ran `outside` the proof's conditions (a load the script did not
    make, say) is listed apart with its reason, and not counted: it is kept, not hidden."""
    code, way = code_digest(), _way(args)
    rounds = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    rounds = [r for r in rounds if r["code"] == code and r["way"] == way]
    counted = [r for r in rounds if not r.get("outside")]
    if not counted:
        print(f"no rounds recorded for code {code}, {way}: --jobs and --concurrency decide the way")
        for round_ in rounds:
            print(f"not counted: the round ended {round_['ended']}, {round_['outside']}")
        return 1
    outcomes = _tally(counted, names)
    loads = sorted({round_["load"] for round_ in counted})
    fewest = min((sum(seen.values()) for seen in outcomes.values()), default=0)
    how = f"{len(counted)} rounds recorded for code {code} ({fewest} of every solution), {way}"
    status = _report(outcomes, f"{how}; load: {'; '.join(loads) or 'none'}")
    for round_ in rounds:
        if round_.get("outside"):
            _apart(round_, outcomes)
    if args.own_tasks:
        status |= _against_calibration(counted, names)
    return status


def _against_calibration(rounds: list[dict[str, typing.Any]], names: list[str]) -> int:
    """Whether every counted round gave each solution what the calibration expects of it on its
    own tasks: the reference nothing failed, the starter all but what it already does right,
    each mutant exactly its expected scenarios among those its tasks grade."""
    expected = _expected(names)
    wrong = [
        (round_["ended"], name, outcome)
        for round_ in rounds
        for name, outcome in round_["outcomes"].items()
        if name in expected and _failures(outcome) != expected[name]
    ]
    print(
        f"against the calibration: {len(rounds)} rounds of {len(expected)} solutions, "
        f"{len(wrong)} outcomes otherwise than expected"
    )
    for ended, name, outcome in wrong:
        print(f"  the round ended {ended}: {name}: {outcome}")
    return 1 if wrong else 0


def _expected(names: list[str]) -> dict[str, set[str]]:
    """The scenarios each solution must fail, graded on its own tasks (`_tasks`)."""
    scenarios = requirement_table.scenarios()
    expected = {"reference": set(), "starter": set(scenarios) - STARTER_PASSES}
    for mutant in MUTANTS:
        tasks = set(own_tasks(mutant))
        graded = {id for id, info in scenarios.items() if "all" in tasks or info.task in tasks}
        expected[mutant.name] = set(mutant.expected_failures) & graded
    return {name: expected[name] for name in names if name in expected}


def _failures(outcome: str) -> set[str] | None:
    """The scenarios an outcome (as `_outcome` writes it) lists as failed; None if one did not
    pass otherwise (a timeout, a harness error)."""
    listed = outcome.partition(" [")[2].removesuffix("]")
    if listed == "none failed":
        return set()
    pairs = [item.rpartition(":") for item in listed.split(", ")]
    if any(status != "failed" for _, _, status in pairs):
        return None
    return {id for id, _, _ in pairs}


def _tally(
    rounds: list[dict[str, typing.Any]], names: list[str]
) -> dict[str, collections.Counter[str]]:
    outcomes = {name: collections.Counter[str]() for name in names}
    for round_ in rounds:
        for name in names:
            if name in round_["outcomes"]:
                outcomes[name][round_["outcomes"][name]] += 1
    return outcomes


def _apart(round_: dict[str, typing.Any], counted: dict[str, collections.Counter[str]]) -> None:
    """A round not counted: why, and where it differs from every counted round."""
    print(f"not counted: the round ended {round_['ended']}, {round_['outside']}")
    for name, outcome in round_["outcomes"].items():
        if name in counted and outcome not in counted[name]:
            print(f"      {name}: {outcome}")


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

"""How long a full grade of the reference takes: public and hidden scenarios, in one app mode.

    python benchmarks/grade_time.py [--mode subprocess|thread|command] [--runs 3] [--tasks all]
                                    [--concurrency N] [--also-import MODULE]

Prints the wall time of ``pytest scenarios`` against the reference (from starting pytest to its
exit; ``--mode command`` times ``faultfirst grade`` instead, which adds taking the submission
apart, the grading child's clean start and the app's limits), the time spent inside the
scenarios themselves, and the rest, which is the harness's overhead (starting pytest and the
fake, starting an app per scenario). Nearly all the time inside is waits the scenarios script on
purpose (a model thinking or writing, backoffs, Retry-After, deadlines): their sum is printed
too, the floor no grading harness could go below while running the scenarios one at a time,
and the wall time's ratio to it: under 1 once scenarios run side by side (``--concurrency``,
default: as ``faultfirst grade`` chooses). The CPU is the whole machine's over the grade (Linux's
``/proc/stat``), so it counts the apps, boxed or not, and the template they are forked from:
run it on an otherwise idle machine. ``--also-import openai`` grades the reference with that
import added to its app, as a submission built on the SDK would be: what its import costs a
grade, once its apps' template has loaded it ahead of them (`harness.hosting.preload`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from grading_runs import build, grade  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("subprocess", "thread", "command"), default="subprocess")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--tasks", help="the tasks to grade, as `--tasks` takes them (default: the core four)"
    )
    parser.add_argument("--concurrency", default="auto", help="scenarios at once (default: auto)")
    parser.add_argument(
        "--also-import", metavar="MODULE", help="add `import MODULE` to the reference's app"
    )
    args = parser.parse_args()
    walls, inside, cpus = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        reference = build("reference", Path(folder))
        if args.also_import:
            with (reference / "exercise_app" / "app.py").open("a") as app:
                app.write(f"\nimport {args.also_import}  # noqa: E402, F401\n")
        for _ in range(args.runs):
            started, cpu = time.monotonic(), _machine_cpu()
            if args.mode == "command":
                report = _faultfirst_grade(
                    reference, Path(folder) / "grade.json", args.tasks, args.concurrency
                )
            else:
                report = grade(
                    reference, mode=args.mode, tasks=args.tasks, concurrency=args.concurrency
                )
            walls.append(time.monotonic() - started)
            cpus.append(_machine_cpu() - cpu)
            inside.append(sum(s["duration"] for s in report["scenarios"]))
            assert report["score"]["percentage"] == 100, report["score"]
        one_at_a_time = report
        if args.concurrency != "1":  # side by side, scenarios take longer: the floor is one's
            one_at_a_time = grade(reference, mode="thread", tasks=args.tasks, concurrency="1")
    count = len(report["scenarios"])
    tasks = args.tasks or "the core four"
    also = f" importing {args.also_import}" if args.also_import else ""
    print(
        f"full grade of the reference{also}, {count} scenarios ({tasks}), {args.mode} mode, "
        f"concurrency {args.concurrency}, {args.runs} runs"
    )
    print(f"  wall time:         {_range(walls)}")
    print(f"  CPU (machine):     {_range(cpus)}")
    print(f"  inside scenarios:  {_range(inside)} (summed: side by side, they overlap)")
    if args.concurrency == "1":
        print(f"  harness overhead:  {_range([w - i for w, i in zip(walls, inside)])}")
    overhead, floor = scripted_waits(one_at_a_time["scenarios"])
    print(
        f"  scripted waits:    {floor:.1f}s (the time inside the scenarios of a grade running "
        f"them one at a time, less {overhead * 1000:.0f} ms each: what the quickest take)"
    )
    print(f"  wall / floor:      {statistics.median(walls) / floor:.2f}")
    slowest = sorted(report["scenarios"], key=lambda s: s["duration"], reverse=True)[:5]
    print(
        "  slowest scenarios (last run): "
        + ", ".join(f"{s['id']} {s['duration']:.2f}s" for s in slowest)
    )
    return 0


def scripted_waits(scenarios: list[dict[str, typing.Any]]) -> tuple[float, float]:
    """The time a grade waits on purpose (a model thinking or writing, backoffs, Retry-After,
    deadlines), estimated as each scenario's time less what a scenario that waits for nothing
    takes (the median of the five quickest): its app's start and its requests. Returns that
    overhead and the sum."""
    durations = sorted(scenario["duration"] for scenario in scenarios)
    overhead = statistics.median(durations[:5])
    return overhead, sum(max(0.0, duration - overhead) for duration in durations)


def _faultfirst_grade(
    submission: Path, report: Path, tasks: str | None, concurrency: str
) -> dict[str, typing.Any]:
    command = [sys.executable, "-m", "harness.cli", "grade", str(submission), "--json", str(report)]
    if tasks is not None:
        command += ["--tasks", tasks]
    if concurrency != "auto":
        command += ["--concurrency", concurrency]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    data: dict[str, typing.Any] = json.loads(report.read_text())
    return data


def _machine_cpu() -> float:
    """CPU seconds the whole machine has spent (every core, user and system), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _range(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.1f}s (min {min(values):.1f}s, max {max(values):.1f}s)"
    )


if __name__ == "__main__":
    sys.exit(main())

"""Grade many solutions in one process, one ``pytest scenarios`` session after another.

    python tests/calibrate.py --out DIR [--tasks LIST] [--app-mode thread] NAME[:TASKS[:IDS]] ...

writes ``DIR/NAME.json``, the grade report of each solution (reference, starter or a mutant's
name) on the scenarios of its tasks, those after its colon (else ``--tasks``, by default every
task), and the scenarios whose ids follow a second colon. The app runs in thread mode, as
``pytest scenarios`` runs it for a candidate, unless ``--app-mode subprocess``.

A mutant's entry in CI is `entry`: its own tasks (`own_tasks`), and the scenarios elsewhere it
must fail.

Why one process: a fresh ``pytest`` pays its start (the interpreter, pytest, hypothesis, the
harness) and the assertion rewriting of every scenario again, two to four seconds of CPU of a
grade that takes as long again inside its scenarios; the calibration grades a few hundred
mutants on two cores. Sessions after the first find all of that imported. Nothing else carries
over: each session has its own provider and its own apps, each app imported afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import typing
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from grading_runs import SCENARIOS, build, not_passed  # noqa: E402
from harness.grading.tasks import TASKS  # noqa: E402
from mutants import Mutant  # noqa: E402

Report = dict[str, typing.Any]


class Selection:
    """Run only the scenarios of `tasks`, and those named in `scenarios`, though every task is
    graded: a scenario that needs another task (``needs=``) then runs, and a mutant is known to
    have done that task right, being the reference everywhere else."""

    def __init__(self, tasks: str, scenarios: str = "") -> None:
        self.tasks = set(tasks.split(","))
        self.scenarios = set(filter(None, scenarios.split(",")))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if "all" in self.tasks:
            return
        dropped = [item for item in items if not self._keeps(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item not in dropped]

    def _keeps(self, item: pytest.Item) -> bool:
        mark = item.get_closest_marker("scenario")
        if mark is None:
            return False
        name = getattr(item, "originalname", item.name).removeprefix("test_")
        return mark.kwargs.get("task") in self.tasks or name in self.scenarios


def grade(
    name: str,
    folder: Path,
    selection: Selection,
    report: Path,
    mode: str = "thread",
    concurrency: str = "auto",
) -> str:
    """Grade the solution built in `folder` on the scenarios `selection` keeps, its app in
    `mode`, `concurrency` scenarios at once, writing its report; pytest's output."""
    arguments = [str(SCENARIOS), "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    arguments += ["--faultfirst-app-mode", mode, "--faultfirst-concurrency", concurrency]
    arguments += ["--faultfirst-submission", str(folder), "--faultfirst-submission-label", name]
    arguments += ["--faultfirst-tasks", "all", "--faultfirst-json", str(report)]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        pytest.main(arguments, plugins=[selection])
    return output.getvalue()


def own_tasks(mutant: Mutant) -> tuple[str, ...]:
    """The tasks whose every scenario a mutant is graded on in CI: its `reaches` if it says,
    else the tasks of the requirements it breaks (of the scenarios it must fail, for one across
    tasks, such as the error shape); every task for one expected to fail none of those."""
    if mutant.reaches is not None:
        return mutant.reaches
    tasks = {id.split(".")[0] for id in mutant.breaks} & set(TASKS)
    if not tasks:
        tasks = {_task_of(id) for id in mutant.expected_failures}
    return tuple(sorted(tasks)) or ("all",)


def elsewhere(mutant: Mutant) -> list[str]:
    """The scenarios outside its own tasks a mutant must fail (a batch question retried by a
    mutant of the retries, say)."""
    return outside(mutant, own_tasks(mutant))


def outside(mutant: Mutant, tasks: typing.Iterable[str]) -> list[str]:
    """The scenarios a mutant must fail that are in none of `tasks`."""
    tasks = set(tasks)
    if "all" in tasks:
        return []
    return sorted(id for id in mutant.expected_failures if _task_of(id) not in tasks)


def entry(mutant: Mutant) -> str:
    """The mutant as `calibrate.py` takes it: ``name:own tasks:scenarios elsewhere``."""
    return f"{mutant.name}:{','.join(own_tasks(mutant))}:{','.join(elsewhere(mutant))}"


def _task_of(scenario: str) -> str:
    # Imported here, not at the top: a grading process, which needs none of it, would import
    # every scenario module twice (under the table's names, then under pytest's).
    import requirement_table

    return requirement_table.scenarios()[scenario].task


def mismatch(report: Report, expected: set[str]) -> dict[str, typing.Any] | None:
    """What is wrong with a grade that should fail exactly the `expected` scenarios, and nothing
    but "failed" among what did not pass (no timeouts, no harness errors); None if nothing."""
    if not_passed(report) == {scenario: "failed" for scenario in expected}:
        return None
    return {
        "tasks": report["tasks"],
        "expected": sorted(expected),
        "got": not_passed(report),
        "unexpected": surprises(report, expected),
    }


def surprises(report: Report, expected: set[str]) -> dict[str, str]:
    """Why each scenario graded otherwise than expected went as it did: a failure's reason (what
    a flake says about itself), or that an expected failure passed."""
    found = {}
    for scenario in report["scenarios"]:
        failed, meant_to = scenario["status"] != "passed", scenario["id"] in expected
        if failed != meant_to:
            reason = scenario["reason"] if failed else "its flaw went uncaught"
            found[scenario["id"]] = f"{scenario['status']} in {scenario['duration']}s: {reason}"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the reports go")
    parser.add_argument("--tasks", default="all", help="tasks of a name without its own")
    parser.add_argument("--app-mode", choices=("thread", "subprocess"), default="thread")
    parser.add_argument(
        "--concurrency", default="auto", help="scenarios at once in each grade (default: auto)"
    )
    parser.add_argument("names", nargs="+", metavar="NAME[:TASKS[:IDS]]")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in args.names:
        name, _, chosen = entry.partition(":")
        tasks, _, scenarios = chosen.partition(":")
        with tempfile.TemporaryDirectory() as folder:
            built = build(name, Path(folder) / name)
            report = args.out / f"{name}.json"
            selection = Selection(tasks or args.tasks, scenarios)
            output = grade(name, built, selection, report, args.app_mode, args.concurrency)
            if not report.exists():
                print(f"{name}: no report\n{output}", file=sys.stderr)
                return 1
        print(f"{name}: {json.loads(report.read_text())['score']['percentage']}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grade submissions as an interviewer does: each in a child pytest run of the grader's scenarios.

A submission is taken apart first (`harness.submission`): only its ``exercise_app/`` reaches the
work folder, so its own scenarios, conftest.py, pytest configuration and plugins are never seen.
The child runs the scenarios that sit next to this module with plugin autoloading off and no
configuration file of anybody's, so neither the submission nor whatever else is installed can
change the score; the app runs in grandchildren that keep `sandbox.Limits`.

The child stops itself at the run's time limit and still writes its report (the scenarios not
reached are graded "not run"); the parent kills it only if it outlives that by a wide margin.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from . import dependencies
from .sandbox import Limits
from .submission import Submission, SubmissionError, prepare

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
HIDDEN = SCENARIOS / "hidden"

# The plugins the scenarios need, loaded by name: autoloading is off in the child, so a plugin
# installed beside faultfirst (pytest-randomly reordering scenarios, say) cannot touch a grade.
PLUGINS = ("harness.plugin", "anyio.pytest_plugin", "_hypothesis_pytestplugin")

# How long past its own time limit the child may take to write its report before it is killed.
REPORT_GRACE = 60.0

REPORT_OPTIONS = {
    "json": "--grade-json",
    "md": "--grade-md",
    "html": "--grade-html",
    "junit": "--junitxml",
    "gradescope": "--grade-gradescope",
}
SUFFIXES = {"json": ".json", "md": ".md", "html": ".html", "junit": ".xml", "gradescope": ".json"}


class GraderError(RuntimeError):
    """The grader itself cannot run (not a fault of any submission); one line for people."""


@dataclass(frozen=True)
class Options:
    """How to grade: the same for every submission of a batch."""

    tasks: str | None = None  # None: the plugin's default task set
    public_only: bool = False
    seed: int = 0
    scenario_timeout: float = 20.0
    run_timeout: float = 600.0
    limits: Limits = field(default_factory=Limits)
    install_deps: bool = False


@dataclass
class Outcome:
    """One submission's grade, or why it has none."""

    name: str
    source: str
    status: str  # graded, ungradable, incomplete (as in the JSON report), or "not graded"
    reason: str = ""  # why it was not graded
    report: dict[str, typing.Any] | None = None  # the JSON report (docs/reports.md)
    wall_time: float = 0.0
    digest: str = ""
    output: str = ""  # what the grading run printed
    reports: dict[str, Path] = field(default_factory=dict)  # kind -> the file written

    @property
    def percentage(self) -> float:
        return float(self.report["score"]["percentage"]) if self.report else 0.0


def check_installation() -> None:
    """Raise `GraderError` unless the scenarios are where `grade` looks for them."""
    if not (SCENARIOS / "conftest.py").is_file():
        raise GraderError(
            f"no scenarios next to the harness ({SCENARIOS}): faultfirst grades from its source "
            "folder, so install it with `pip install -e .` there"
        )


def grade(
    source: str | os.PathLike[str],
    options: Options,
    *,
    reports: typing.Mapping[str, Path] | None = None,
    name: str | None = None,
    echo: typing.Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Grade one submission. `reports` maps a kind (json, md, html, junit, gradescope) to the
    file to write; `echo`, if given, gets the grading run's output line by line as it comes;
    setting `cancel` stops the run at once (no grade)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faultfirst-") as folder:
        work = Path(folder)
        try:
            submission = prepare(source, work)
        except SubmissionError as error:
            return Outcome(name or Path(source).name, str(source), "not graded", str(error))
        outcome = Outcome(
            name or submission.name, str(source), "not graded", digest=submission.digest
        )
        try:
            python = _python_for(submission, work, options)
            _run(submission, work, options, python, outcome, reports or {}, echo, cancel)
        except dependencies.InstallError as error:
            outcome.reason = str(error)
        outcome.wall_time = time.monotonic() - started
        return outcome


def _python_for(submission: Submission, work: Path, options: Options) -> str:
    if options.install_deps and submission.dependencies:
        return dependencies.install(submission.dependencies, work / "venv")
    return sys.executable


def _run(
    submission: Submission,
    work: Path,
    options: Options,
    python: str,
    outcome: Outcome,
    reports: typing.Mapping[str, Path],
    echo: typing.Callable[[str], None] | None,
    cancel: threading.Event | None,
) -> None:
    written = {kind: work / f"report-{kind}{SUFFIXES[kind]}" for kind in {"json", *reports}}
    command = _command(submission, work, options, python, written, outcome.name)
    limit = options.run_timeout + REPORT_GRACE
    cancel = cancel or threading.Event()
    outcome.output, killed = _run_child(command, work, limit, echo, cancel)
    if killed:
        outcome.reason = (
            "grading was cancelled"
            if cancel.is_set()
            else f"the grading run did not end within {limit:g}s, so it was killed"
        )
        return
    if not written["json"].is_file():
        outcome.reason = f"the grader could not run: {_last_line(outcome.output)}"
        return
    report = json.loads(written["json"].read_text(encoding="utf-8"))
    outcome.report, outcome.status = report, report["status"]
    for kind, destination in reports.items():
        _deliver(written[kind], destination)
        outcome.reports[kind] = destination


def _command(
    submission: Submission,
    work: Path,
    options: Options,
    python: str,
    written: dict[str, Path],
    label: str,
) -> list[str]:
    config = work / "pytest.ini"  # nobody's configuration: not the grader's, not the submission's
    config.write_text("[pytest]\n")
    command = [sys.executable, "-m", "pytest", str(SCENARIOS)]
    if options.public_only:
        command += ["--ignore", str(HIDDEN)]
    for plugin in PLUGINS:
        command += ["-p", plugin]
    command += ["-p", "no:cacheprovider", "-c", str(config), "--rootdir", str(ROOT)]
    command += ["-q", "--no-header", "--tb=no", "-rN", "--color=no"]
    command += ["--submission", str(submission.folder), "--submission-label", label]
    command += ["--app-mode", "subprocess", "--app-python", python]
    command += [
        f"--app-memory={options.limits.memory_mb}",
        f"--app-cpu={options.limits.cpu_seconds}",
    ]
    command += [f"--app-processes={options.limits.processes}"]
    command += [f"--scenario-timeout={options.scenario_timeout:g}"]
    command += [f"--run-timeout={options.run_timeout:g}", f"--fault-seed={options.seed}"]
    if options.tasks is not None:
        command += ["--tasks", options.tasks]
    for kind, path in written.items():
        command += [REPORT_OPTIONS[kind], str(path)]
    return command


def _run_child(
    command: list[str],
    work: Path,
    timeout: float,
    echo: typing.Callable[[str], None] | None,
    cancel: threading.Event,
) -> tuple[str, bool]:
    """Run the grading child; its output, and whether it had to be killed (past `timeout`, or
    when `cancel` was set)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PYTEST_") and name != "PYTHONPATH"
    }
    environment["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    environment["PYTHONPATH"] = str(ROOT)  # the child grades with this very harness
    interrupted: list[int] = []
    with _interrupts_noted(interrupted):  # Ctrl-C: the child goes, and its apps with it
        process = subprocess.Popen(
            command,
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=_read, args=(process, lines, echo), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while (
                process.poll() is None
                and time.monotonic() < deadline
                and not cancel.is_set()
                and not interrupted
            ):
                cancel.wait(0.1)
        finally:
            killed = process.poll() is None
            if killed:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join()
    if interrupted:
        raise KeyboardInterrupt
    return "".join(lines), killed


@contextlib.contextmanager
def _interrupts_noted(interrupted: list[int]) -> typing.Iterator[None]:
    """Within, Ctrl-C (SIGINT) is appended to `interrupted` instead of raising KeyboardInterrupt
    wherever the main thread happens to be: raised inside ``Popen.poll()`` just after it took the
    Popen's waitpid lock, KeyboardInterrupt leaves that lock held for good, and the
    ``process.wait()`` after the kill never returns. The handler takes no lock (an Event's would
    deadlock when the signal lands while the main thread holds it in ``Event.wait``).

    Only the main thread gets signals, and only Python's default handler is replaced: not one a
    caller set, nor an ignored SIGINT (a background job's)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _read(
    process: subprocess.Popen[str], lines: list[str], echo: typing.Callable[[str], None] | None
) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if echo is not None:
            echo(line)


def _deliver(written: Path, destination: Path) -> None:
    """Copy a report to where it was asked for. ``$GITHUB_STEP_SUMMARY`` collects what every step
    of a job writes, so a report meant for it is appended, not put in its place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if str(destination) == os.environ.get("GITHUB_STEP_SUMMARY"):
        with destination.open("a", encoding="utf-8") as summary:
            summary.write(written.read_text(encoding="utf-8"))
    else:
        shutil.copyfile(written, destination)


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "it printed nothing"

"""Grade submissions as an interviewer does: each in a child pytest run of the grader's scenarios.

A submission is taken apart first (`harness.submissions.intake`): only its ``exercise_app/``
reaches the work folder, so its own scenarios, conftest.py, pytest configuration and plugins are
never seen.
The child runs the scenarios that sit next to this module with plugin autoloading off and no
configuration file of anybody's, so neither the submission nor whatever else is installed can
change the score; the app runs in grandchildren that keep `sandbox.Limits`, boxed where the
machine allows (`hosting.isolation`), and the grade comes back on a pipe (`grading.channel`).

The child stops itself at the run's time limit and still sends its grade (the scenarios not
reached are graded "not run"); the parent kills it only if it outlives that by a wide margin.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, vocabulary
from ..grading import channel
from ..grading import reports as grade_reports
from ..grading.sanitize import clean, one_line
from ..hosting import isolation
from ..hosting.launcher import PASSED_THROUGH, missing_module
from ..hosting.sandbox import Limits
from . import checkout, dependencies
from .intake import Submission, SubmissionError, prepare

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
HIDDEN = SCENARIOS / "hidden"

# The plugins the scenarios need, loaded by name: autoloading is off in the child, so a plugin
# installed beside faultfirst (pytest-randomly reordering scenarios, say) cannot touch a grade.
PLUGINS = ("harness.plugin", "anyio.pytest_plugin", "_hypothesis_pytestplugin")

# How long past its own time limit the child may take to send its grade before it is killed.
REPORT_GRACE = 60.0
# How long the child's pipes are read once it has ended: all it wrote is there at once, unless
# a process it left behind holds them open (an app's daemon, say), which must not hold the grade.
DRAIN = 2.0
# How long to wait for a child killed with SIGKILL to be gone.
STOP_WAIT = 5.0
# Characters of one line of the child's output: our lines are short; an app's text in a reason
# is cut well before this already (`harness.grading.sanitize`).
OUTPUT_LINE_LIMIT = 4000

REPORT_KINDS = channel.KINDS
SUFFIXES = {"json": ".json", "md": ".md", "html": ".html", "junit": ".xml", "gradescope": ".json"}


class GraderError(RuntimeError):
    """The grader itself cannot run (not a fault of any submission); one line for people."""


@dataclass(frozen=True)
class Options:
    """How to grade: the same for every submission of a batch."""

    tasks: str = vocabulary.TASKS
    public_only: bool = False
    seed: int = vocabulary.SEED
    scenario_timeout: float = vocabulary.SCENARIO_TIMEOUT
    run_timeout: float | None = vocabulary.RUN_TIMEOUT  # None: no limit
    limits: Limits = field(default_factory=Limits)
    install_deps: bool = False
    isolation: str = vocabulary.ISOLATION  # of `harness.hosting.isolation.CHOICES`
    concurrency: int = 1  # scenarios at once in each grade (see `harness.grading.lanes`)


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
    changed_grader: list[str] = field(default_factory=list)  # see `harness.submissions.checkout`
    unmet: list[str] = field(default_factory=list)  # declared, and lacking where the app runs

    @property
    def graded(self) -> bool:
        """Whether it has a grade that says something of the app: one whose app started."""
        return self.report is not None and self.status != "ungradable"

    @property
    def percentage(self) -> float:
        return float(self.report["score"]["percentage"]) if self.report else 0.0


def is_candidate_bundle() -> bool:
    """Whether this installation is a candidate's bundle (`harness.commands.export_candidate`),
    which is ours without ``scenarios/hidden/``: what it says of itself then speaks to the
    candidate."""
    return (SCENARIOS / "conftest.py").is_file() and not HIDDEN.is_dir()


def default_tasks() -> str:
    """The tasks `faultfirst grade` grades unless told: those this installation's pytest grades,
    ``faultfirst_tasks`` in its pyproject.toml (where a candidate's bundle names the candidate's
    tasks), else the core four."""
    try:
        config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return vocabulary.TASKS
    options = config.get("tool", {}).get("pytest", {}).get("ini_options", {})
    tasks = options.get(vocabulary.ini_key("tasks")) if isinstance(options, dict) else None
    return tasks if isinstance(tasks, str) and tasks.strip() else vocabulary.TASKS


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
    warn: typing.Callable[[str], None] | None = None,
) -> Outcome:
    """Grade one submission. `reports` maps a kind (json, md, html, junit, gradescope) to the
    file to write; `echo`, if given, gets the grading run's output line by line as it comes;
    setting `cancel` stops the run at once (no grade); `warn`, if given, gets a line before the
    run when the submission declares packages its app will not find (see `_python_for`). With
    no grade, the JSON report is the record of why (`reports.not_graded_json`)."""
    reports = reports or {}
    outcome = _grade(source, options, reports, name, echo, cancel, warn)
    stopped = cancel is not None and cancel.is_set()  # Ctrl-C: no report at all
    if outcome.report is None and "json" in reports and not stopped:
        destination = reports["json"]
        record = grade_reports.not_graded_json(
            submission=outcome.name,
            source=outcome.source,
            reason=outcome.reason,
            wall_time=outcome.wall_time,
            harness_version=__version__,
        )
        deliver(record, destination)
        outcome.reports["json"] = destination
    return outcome


def _grade(
    source: str | os.PathLike[str],
    options: Options,
    reports: typing.Mapping[str, Path],
    name: str | None,
    echo: typing.Callable[[str], None] | None,
    cancel: threading.Event | None,
    warn: typing.Callable[[str], None] | None,
) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faultfirst-") as folder:
        work = Path(folder)
        try:
            submission = prepare(source, work)
        except SubmissionError as error:  # it may quote the submission's own names
            reason = one_line(str(error))
            outcome = Outcome(name or Path(source).name, str(source), "not graded", reason)
            outcome.wall_time = time.monotonic() - started
            return outcome
        outcome = Outcome(
            name or submission.name, str(source), "not graded", digest=submission.digest
        )
        outcome.changed_grader = _changed_grader(submission.source)
        try:
            python = _python_for(submission, work, options, outcome, warn)
            _run(submission, work, options, python, outcome, reports, echo, cancel, started)
        except dependencies.InstallError as error:
            outcome.reason = one_line(str(error))  # it quotes what the submission declares
        if outcome.report is not None and outcome.status == "ungradable":
            outcome.reason = _never_started(outcome)
        if outcome.report is None:  # else its grade says it already
            outcome.wall_time = time.monotonic() - started
        return outcome


def _changed_grader(source: Path) -> list[str]:
    if source.is_dir():
        root = source.parent if source.name == "exercise_app" else source
        return checkout.protected_changes(root)
    return []


def _python_for(
    submission: Submission,
    work: Path,
    options: Options,
    outcome: Outcome,
    warn: typing.Callable[[str], None] | None,
) -> str:
    """The Python the app runs on: the grader's own, unless the submission declares packages it
    lacks and `--install-deps` asks for them (a throwaway virtualenv then). Without it, the
    submission is graded all the same, after one line saying what is lacking: a package it
    declares but never imports costs it nothing, and one it does import stops its app in the
    first scenario, with that line again as the reason (`_never_started`)."""
    outcome.unmet = dependencies.missing(submission.dependencies)
    if not outcome.unmet:
        return sys.executable
    if options.install_deps:
        return dependencies.install(submission.dependencies, work / "venv")
    if warn is not None:
        warn(one_line(dependencies.advice(outcome.name, outcome.unmet)))
    return sys.executable


def _never_started(outcome: Outcome) -> str:
    """Why an ungradable submission's app never started, in one line: the reason its scenarios
    share, or, for a module it could not import that it declares (by the same name), the line
    that says what to install."""
    assert outcome.report is not None
    reasons = list(
        dict.fromkeys(
            scenario["reason"]
            for scenario in outcome.report["scenarios"]
            if scenario["status"] == "app did not start"
        )
    )
    module = next(filter(None, map(missing_module, reasons)), None)
    if module is not None and dependencies.declares(outcome.unmet, module):
        advice = dependencies.advice(outcome.name, outcome.unmet)
        return one_line(f"its app imports {module!r}, which is not installed, and {advice}")
    if len(reasons) == 1:
        return f"its app never started: {one_line(reasons[0], limit=500)}"
    return "its app never started (its score board says why)"


def _run(
    submission: Submission,
    work: Path,
    options: Options,
    python: str,
    outcome: Outcome,
    reports: typing.Mapping[str, Path],
    echo: typing.Callable[[str], None] | None,
    cancel: threading.Event | None,
    started: float,
) -> None:
    kinds = ("json", *sorted(set(reports) - {"json"}))
    command = _command(submission, work, options, python, kinds, outcome.name)
    limit = math.inf if options.run_timeout is None else options.run_timeout + REPORT_GRACE
    cancel = cancel or threading.Event()
    child = _run_child(command, work, limit, echo, cancel)
    outcome.output = child.output
    if child.returncode is None:
        outcome.reason = (
            "grading was cancelled"
            if cancel.is_set()
            else f"the grading run did not end within {limit:g}s, so it was killed"
        )
        return
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        outcome.reason = f"the grading run was killed by {name} before it ended, so it has no grade"
        return
    if child.returncode != 0:
        outcome.reason = f"the grader could not run: {_last_line(outcome.output)}"
        return
    try:
        texts = channel.receive(child.grade, kinds)
    except channel.ChannelError as error:
        outcome.reason = f"the grading run ended, but {error}: {_last_line(outcome.output)}"
        return
    outcome.wall_time = round(time.monotonic() - started, 3)
    texts["json"], report = grade_reports.stamped(
        texts["json"], source=outcome.source, wall_time=outcome.wall_time
    )
    outcome.report, outcome.status = report, report["status"]
    for kind, destination in reports.items():
        deliver(texts[kind], destination)
        outcome.reports[kind] = destination


def _command(
    submission: Submission,
    work: Path,
    options: Options,
    python: str,
    kinds: tuple[str, ...],
    label: str,
) -> list[str]:
    config = work / "pytest.ini"  # nobody's configuration: not the grader's, not the submission's
    config.write_text("[pytest]\n")
    own_network = _network_prefix(options)
    command = [*own_network, sys.executable, "-m", "pytest", str(SCENARIOS)]
    if options.public_only:
        command += ["--ignore", str(HIDDEN)]
    for plugin in PLUGINS:
        command += ["-p", plugin]
    command += ["-p", "no:cacheprovider", "-c", str(config), "--rootdir", str(ROOT)]
    command += ["-q", "--no-header", "--tb=no", "-rN", "--color=no"]
    run_timeout = 0 if options.run_timeout is None else options.run_timeout  # 0: no limit
    settings = {
        "submission": str(submission.folder),
        "submission-label": label,
        "app-mode": "subprocess",
        "app-python": python,
        "memory": options.limits.memory_mb,
        "cpu": options.limits.cpu_seconds,
        "processes": options.limits.processes,
        "scenario-timeout": f"{options.scenario_timeout:g}",
        "run-timeout": f"{run_timeout:g}",
        "concurrency": options.concurrency,
        "seed": options.seed,
        "tasks": options.tasks,
        "isolation": _child_isolation(options),
        "grade-fd-reports": ",".join(kinds),  # and grade-fd: added by _run_child
    }
    command += [f"{vocabulary.pytest_option(word)}={value}" for word, value in settings.items()]
    if own_network:
        command += [vocabulary.pytest_option("isolated-network")]
    return command


def isolation_level(options: Options) -> isolation.Level:
    """The isolation grades with `options` get here; `GraderError` if it is not the one required."""
    if options.isolation == isolation.NONE:
        return isolation.Level(isolation.NONE, "turned off (--isolation none)")
    level = isolation.detect()
    if options.isolation == "required" and not level.enough:
        raise GraderError(f"--isolation required, but {level.why_not}")
    return level


def _child_isolation(options: Options) -> str:
    # Where boxes work, the child must use them, not fall back to none without a word.
    if options.isolation == "auto" and isolation.detect().enough:
        return "required"
    return options.isolation


def _network_prefix(options: Options) -> list[str]:
    """A network namespace of its own for the grading run, where apps are boxed: its apps then
    reach its fake provider on loopback, and nothing else (util-linux's ``unshare``)."""
    unshare = shutil.which("unshare")
    root_boxes = isolation.detect().name == isolation.BOXED  # a normal user's cannot
    if unshare is None or options.isolation == isolation.NONE or not root_boxes:
        return []
    return [unshare, "--net", "--"]


@dataclass
class _Child:
    """How a grading run ended: what it printed, the grade it sent, its exit status (negative:
    the signal that killed it; None: killed by us)."""

    output: str
    grade: bytes
    returncode: int | None


def _run_child(
    command: list[str],
    work: Path,
    timeout: float,
    echo: typing.Callable[[str], None] | None,
    cancel: threading.Event,
) -> _Child:
    """Run the grading child, reading its output and its grade as they come. It is killed past
    `timeout`, when `cancel` is set, or on Ctrl-C (KeyboardInterrupt once it is gone)."""
    interrupted: list[int] = []
    with _interrupts_noted(interrupted), _Pipes(echo) as pipes:
        process = pipes.start(command, cwd=work, env=_environment())
        deadline = time.monotonic() + timeout
        try:
            while (
                process.poll() is None
                and time.monotonic() < deadline
                and not cancel.is_set()
                and not interrupted
            ):
                pipes.read(0.1)
        finally:
            returncode = process.poll()
            if returncode is None:  # past its time, cancelled, or interrupted: it goes now
                os.killpg(process.pid, signal.SIGKILL)  # not reaped yet: still its own group
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(STOP_WAIT)
        if returncode is not None:
            pipes.drain(DRAIN)
    if interrupted:
        raise KeyboardInterrupt
    return _Child(pipes.output(), pipes.grade(), returncode)


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


def _environment() -> dict[str, str]:
    """The grading run's environment: the few variables a Python needs, none of the grader's
    own (tokens, credentials), which the apps it runs could otherwise read from it."""
    environment = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    environment["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    environment["PYTHONPATH"] = str(ROOT)  # the child grades with this very harness
    if (cache := bytecode_cache()) is not None:
        environment["PYTHONPYCACHEPREFIX"] = str(cache)
    return environment


def bytecode_cache() -> Path | None:
    """Where grading runs keep their bytecode when the installation is not writable (installed
    by another user, say): else each would compile the harness and rewrite the scenarios' asserts
    afresh, seconds of CPU per grade. None where the installation keeps its own."""
    if os.access(ROOT / "harness", os.W_OK) and os.access(SCENARIOS, os.W_OK):
        return None
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(home) / "faultfirst" / "pycache"


class _Pipes:
    """The grading run's two pipes: its output (echoed line by line, control characters taken
    out) and the grade channel (`harness.grading.channel`), read without threads so that no
    read can block: a process holding a pipe open after the run ends holds up nothing."""

    def __init__(self, echo: typing.Callable[[str], None] | None) -> None:
        self._echo = echo
        self._selector = selectors.DefaultSelector()
        self._lines: list[str] = []
        self._partial = b""
        self._grade = bytearray()
        self._grade_fd = -1
        self._output_file: typing.IO[bytes] | None = None

    def start(
        self, command: list[str], *, cwd: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        grade_read, grade_write = os.pipe()
        try:
            process = subprocess.Popen(
                [*command, vocabulary.pytest_option("grade-fd"), str(grade_write)],
                cwd=cwd,
                env=env,
                pass_fds=(grade_write,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            os.close(grade_read)
            raise
        finally:
            os.close(grade_write)
        assert process.stdout is not None
        self._output_file = process.stdout
        for fd, into in ((process.stdout.fileno(), self._output), (grade_read, self._to_grade)):
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ, into)
        self._grade_fd = grade_read
        return process

    def read(self, timeout: float) -> None:
        """Read what is there, waiting up to `timeout` seconds for something."""
        for key, _ in self._selector.select(timeout):
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if data:
                key.data(data)
            else:
                self._close(key.fd)

    def drain(self, timeout: float) -> None:
        """Read until both pipes are closed, or for `timeout` seconds at most."""
        deadline = time.monotonic() + timeout
        while self._selector.get_map() and (left := deadline - time.monotonic()) > 0:
            self.read(left)

    def output(self) -> str:
        if self._partial:
            self._output(b"\n")
        return "".join(self._lines)

    def grade(self) -> bytes:
        return bytes(self._grade)

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in list(self._selector.get_map()):
            self._close(fd)
        self._selector.close()

    def _close(self, fd: int) -> None:
        self._selector.unregister(fd)
        if fd == self._grade_fd:
            os.close(fd)
        elif self._output_file is not None:
            self._output_file.close()

    def _output(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            line = clean(raw.decode(errors="replace"), limit=OUTPUT_LINE_LIMIT) + "\n"
            self._lines.append(line)
            if self._echo is not None:
                self._echo(line)

    def _to_grade(self, data: bytes) -> None:
        self._grade += data
        if len(self._grade) > channel.LIMIT:  # no grade: stop reading, let its writer fail
            self._close(self._grade_fd)


def deliver(text: str, destination: Path) -> None:
    """Write a report where it was asked for. ``$GITHUB_STEP_SUMMARY`` collects what every step
    of a job writes, so a report meant for it is appended, not put in its place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if str(destination) == os.environ.get("GITHUB_STEP_SUMMARY") else "w"
    with destination.open(mode, encoding="utf-8") as file:
        file.write(text)


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return one_line(lines[-1], limit=300) if lines else "it printed nothing"

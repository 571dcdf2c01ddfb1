"""The faultfirst pytest plugin (registered through the ``pytest11`` entry point).

For any test suite, it gives the fake provider:

- ``fake_llm``: a fresh-looking `FakeLLM` for each test (no faults, empty ledger);
- ``fake_llm_server``: the same provider, one per session (starting one costs ~25 ms, stopping
  one ~0.15 s, so tests share it and `fake_llm` resets it around each test).

For graded scenarios (tests marked ``@pytest.mark.scenario``), it also starts the submission's app
afresh for every scenario (``app``, ``client``), scores the results, prints the score board and
writes the reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import typing
from pathlib import Path

import pytest

from . import __version__
from .hosting import isolation, sandbox
from .app_client import AppClient
from .hosting.app_pool import MODES, AppPool, RunningApp
from .fake_llm import FakeLLM
from .grading import channel, gradescope, html_report, lanes, marks, reports
from .grading.evidence import UserActivity
from .grading.results import Isolation
from .grading.session import GradingSession, ScenarioRun
from .grading.tasks import CORE_TASKS, parse_tasks
from .hosting.launcher import SCENARIO_SETTINGS, AppSettings, forkable, scenario_settings
from .hosting.sandbox import Limits
from .hosting.template import SharedTemplate

INSTALLATION = Path(__file__).resolve().parents[1]  # holds harness/, scenarios/, exercise_app/
SESSION = pytest.StashKey[GradingSession]()
CHANNEL = pytest.StashKey["_Channel"]()
RUN_TIMER = pytest.StashKey[threading.Timer]()
RUN = pytest.StashKey[ScenarioRun]()
NEXT = pytest.StashKey["pytest.Item | None"]()
FORKED = pytest.StashKey[bool]()  # apps are forked from a template (`harness.hosting.template`)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultfirst", "faultfirst: grade LLM apps under injected faults")
    group.addoption(
        "--fault-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for the fake provider's answers, jitter and fault profiles (default: 0). "
        "The same seed replays the same faults.",
    )
    group.addoption(
        "--submission",
        default=".",
        metavar="DIR",
        help="the app to grade: a folder holding exercise_app/, or that exercise_app/ folder "
        "itself (default: the current folder)",
    )
    group.addoption(
        "--tasks",
        default=",".join(CORE_TASKS),
        metavar="LIST",
        help=f"comma-separated tasks to grade, or 'all' (default: {','.join(CORE_TASKS)})",
    )
    group.addoption(
        "--app-mode",
        choices=("auto", *MODES),
        default="auto",
        help="run the app in a thread of the grader (thread: fast) or in a child process "
        "(subprocess: isolated, as `faultfirst grade` does). auto, the default: thread for the "
        "app in this installation's own folder, subprocess for any other, whose code must not "
        "run inside the grader",
    )
    group.addoption(
        "--app-isolation",
        choices=isolation.CHOICES,
        default="auto",
        help="subprocess mode: run each app in a box of its own, seeing only its files and "
        "processes (auto, the default: where the machine allows it, as root on Linux or with "
        "bubblewrap; required: refuse to grade where it does not; none: never)",
    )
    group.addoption(
        "--isolated-network",
        action="store_true",
        help="this run is in a network namespace of its own: bring its loopback up "
        "(`faultfirst grade` runs it so)",
    )
    group.addoption(
        "--concurrency",
        type=_concurrency,
        default="auto",
        metavar="N",
        help="run N scenarios at once, each with its own app and fake provider, in forked "
        "copies of this run (auto, the default: "
        f"{lanes.AUTO_PER_CORE} per core, {lanes.auto()} here; 1: one at a time, in this "
        "process). Only where every test collected is a scenario",
    )
    group.addoption(
        "--scenario-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="stop the app and fail a scenario that runs longer than this (default: 30)",
    )
    group.addoption(
        "--run-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop the run after this long: the scenario running times out and the rest are "
        "graded 'not run' (default: no limit)",
    )
    limits = Limits()
    for option in sandbox.OPTIONS:
        default = getattr(limits, option.field)
        group.addoption(
            f"--app-{option.flag}",
            type=int,
            default=default,
            metavar=option.metavar,
            help=f"subprocess mode: {option.help} (default: {default})",
        )
    group.addoption(
        "--app-python",
        default=sys.executable,
        metavar="PATH",
        help="subprocess mode: the Python that runs the app (default: the one running pytest)",
    )
    group.addoption(
        "--submission-label",
        metavar="NAME",
        help="how reports name the submission (default: its folder)",
    )
    group.addoption(
        "--grade-json", metavar="PATH", help="write the grade as JSON (see docs/reports.md)"
    )
    group.addoption(
        "--grade-md", metavar="PATH", help="write the grade as Markdown, for a PR or CI summary"
    )
    group.addoption(
        "--grade-html", metavar="PATH", help="write the grade as one HTML page, with timelines"
    )
    group.addoption("--grade-gradescope", metavar="PATH", help="write Gradescope's results.json")
    group.addoption(
        "--grade-fd",
        type=int,
        metavar="FD",
        help="send the reports --grade-fd-reports names, as one JSON object, to this inherited "
        "file descriptor at the end, and exit 0 once they are sent (how `faultfirst grade` gets "
        "a grade back: through no file the app under test could find)",
    )
    group.addoption(
        "--grade-fd-reports",
        default="json",
        metavar="LIST",
        help=f"the reports --grade-fd sends, of {','.join(channel.KINDS)} (default: json)",
    )


@pytest.hookimpl(tryfirst=True)  # before --junitxml reads where to write (see _open_channel)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenario(task, points, title, hint, checks, bonus=False): a graded scenario, checking "
        "requirements of the brief (faultfirst)",
    )
    config.addinivalue_line(
        "markers", "app_settings(**settings): the app's settings for this scenario (faultfirst)"
    )
    try:
        tasks = parse_tasks(config.getoption("tasks"))
    except ValueError as error:
        raise pytest.UsageError(f"--tasks: {error}") from None
    if (fd := config.getoption("grade_fd")) is not None:
        config.stash[CHANNEL] = _open_channel(config, fd)
    submission = _submission_folder(config)
    mode = _app_mode(config.getoption("app_mode"), submission)
    limits = Limits(
        **{option.field: config.getoption(f"app_{option.flag}") for option in sandbox.OPTIONS}
    )
    python = config.getoption("app_python")
    level = _isolation(config, mode)
    box = level.name if level.boxed else None
    if config.getoption("isolated_network"):
        isolation.bring_loopback_up()
    config.stash[SESSION] = GradingSession(
        submission=submission,
        tasks=tasks,
        seed=config.getoption("fault_seed"),
        app_mode=mode,
        time_limit=config.getoption("scenario_timeout"),
        pool=lambda template: AppPool(
            submission, mode, limits=limits, python=python, box=box, template=template
        ),
        label=config.getoption("submission_label"),
    )
    config.stash[FORKED] = mode == "subprocess" and forkable(python, box, limits)
    network = "own" if config.getoption("isolated_network") else "shared"
    config.stash[SESSION].grade.isolation = Isolation(level.name, network, level.why_not)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    grading = config.stash[SESSION]
    try:
        deselected = grading.collect(items, distributed=hasattr(config, "workerinput"))
    except marks.MarkError as error:
        raise pytest.UsageError(str(error)) from None
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def pytest_collection_finish(session: pytest.Session) -> None:
    grading = session.config.stash[SESSION]
    grading.will_run(session.items)
    grading.narrowed = _last_failed_only(session.config)


def _last_failed_only(config: pytest.Config) -> bool:
    """Whether pytest's ``--lf`` runs the scenarios that failed last time only: it skips whole
    files that had none, which this plugin then never sees."""
    cache = config.pluginmanager.get_plugin("lfplugin")
    return bool(config.getoption("lf", False) and getattr(cache, "lastfailed", None))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """Run the scenarios in lanes (`harness.grading.lanes`), or leave the loop to pytest."""
    config = session.config
    grading, seconds = config.stash[SESSION], config.getoption("run_timeout")
    count = _lane_count(session)
    if count < 2:
        if seconds is not None:
            config.stash[RUN_TIMER] = grading.limit_run(session, seconds)
        return None
    private = (config.stash[CHANNEL].fd,) if CHANNEL in config.stash else ()
    template = _shared_template(config, count)
    try:
        lanes.run(
            session,
            grading,
            count,
            run_limit=seconds,
            before=_before,
            private=private,
            template=template,
        )
    finally:
        if template is not None:
            template.close()
    if session.shouldfail:
        raise session.Failed(session.shouldfail)
    if session.shouldstop:
        raise session.Interrupted(session.shouldstop)
    return True


def _shared_template(config: pytest.Config, lanes: int) -> SharedTemplate | None:
    """One template for every lane's apps, where apps are forked: its imports paid once, not
    once a lane (~0.6 s of CPU each). None: each lane's pool starts apps as it can."""
    if not config.stash[FORKED]:
        return None
    try:
        return SharedTemplate(lanes)
    except OSError:
        return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> typing.Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    grading = item.config.stash[SESSION]
    if grading.scenario(item) is not None:
        grading.record(item, report, call, item.stash.get(RUN, None))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    _before(item, nextitem)


def _before(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[NEXT] = nextitem  # so that the next scenario's app can start in the background


def pytest_terminal_summary(terminalreporter: typing.Any, config: pytest.Config) -> None:
    grading = config.stash[SESSION]
    if not grading.grade.results:
        return
    terminalreporter.write_sep("=", "faultfirst score board")
    for line in grading.board():
        terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)  # after --junitxml has written its file
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if (timer := config.stash.get(RUN_TIMER, None)) is not None:
        timer.cancel()
    grading = config.stash[SESSION]
    grading.close()
    grading.finish()
    if not grading.grade.results:
        return
    grade, started_at = grading.grade, grading.started_at
    grade.duration = time.time() - started_at
    if path := config.getoption("grade_json"):
        reports.write_json(path, grade, harness_version=__version__, started_at=started_at)
    if path := config.getoption("grade_md"):
        reports.write_markdown(path, grade)
    if path := config.getoption("grade_html"):
        html_report.write_html(path, grade, started_at=started_at)
    if path := config.getoption("grade_gradescope"):
        gradescope.write_gradescope(path, grade)
    if CHANNEL in config.stash:
        to = config.stash[CHANNEL]
        channel.send(to.fd, {kind: _report_text(kind, config, started_at) for kind in to.kinds})
        session.exitstatus = pytest.ExitCode.OK  # the grade is sent: this run did its job


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_llm_server(pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The session's fake provider, serving on 127.0.0.1 and a free port."""
    with FakeLLM(seed=pytestconfig.getoption("fault_seed")) as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM, pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The fake provider, reset for this test: instant answers, no faults, an empty ledger."""
    seed = pytestconfig.getoption("fault_seed")
    fake_llm_server.attend(None)  # the last scenario's app may still be sending: not to count
    fake_llm_server.reset(seed=seed)
    yield fake_llm_server
    fake_llm_server.attend(None)
    fake_llm_server.reset(seed=seed)


@pytest.fixture
def app_settings(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> AppSettings:
    """The settings the app under test gets: the harness's, and this scenario's
    ``@pytest.mark.app_settings(...)`` overrides. Scenarios derive their tolerances from them."""
    overrides = marks.settings_of(request.node, SCENARIO_SETTINGS)
    return AppSettings(scenario_settings(fake_llm.url_for(request.node.nodeid), **overrides))


@pytest.fixture
def app(
    request: pytest.FixtureRequest, fake_llm: FakeLLM, app_settings: AppSettings
) -> typing.Iterator[RunningApp]:
    """The submission's app, started afresh for this test with `app_settings`, on loopback.

    It is stopped after the test, or as soon as the scenario's time limit passes."""
    grading = request.config.stash[SESSION]
    run = request.node.stash[RUN] = ScenarioRun(users=UserActivity())
    upcoming = None
    following = request.node.stash.get(NEXT, None)
    if following is not None and grading.scenario(following) is not None:
        overrides = marks.settings_of(following, SCENARIO_SETTINGS)
        upcoming = scenario_settings(fake_llm.url_for(following.nodeid), **overrides)
    with grading.app_for(run, app_settings.environ, upcoming) as running:
        # What the app asked while starting (in the background, maybe during the scenario
        # before) is not this scenario's; what it asks from now on is.
        fake_llm.attend(request.node.nodeid)
        yield running


@pytest.fixture
def client(app: RunningApp, request: pytest.FixtureRequest) -> AppClient:
    """The app's users, over HTTP (see `harness.app_client.AppClient`)."""
    return AppClient(app.url, request.node.stash[RUN].users)


@pytest.fixture
def question(request: pytest.FixtureRequest) -> str:
    """A question about the papers that no other scenario asks, naming it by an opaque id: the app
    must not learn which scenario asks (a hidden one's name, say), nor carry its name out in its
    answers. The id comes from the scenario's file and name, so it is the same every run, and
    for a hidden scenario nobody without its file can work it out."""
    name = getattr(request.node, "originalname", request.node.name)
    source = Path(str(request.node.path)).read_bytes()
    digest = hashlib.sha256(source + b"\0" + name.encode()).hexdigest()
    return f"What do the papers say about latency? (question {digest[:10]})"


@dataclasses.dataclass(frozen=True)
class _Channel:
    fd: int
    kinds: tuple[str, ...]


def _open_channel(config: pytest.Config, fd: int) -> _Channel:
    """Check --grade-fd and its reports; keep the descriptor from the apps this run starts."""
    try:
        kinds = channel.parse_kinds(config.getoption("grade_fd_reports"))
        os.set_inheritable(fd, False)
    except ValueError as error:
        raise pytest.UsageError(f"--grade-fd-reports: {error}") from None
    except OSError:
        raise pytest.UsageError(f"--grade-fd: {fd} is not an open file descriptor") from None
    if "junit" in kinds and not config.option.xmlpath:
        folder = tempfile.mkdtemp(prefix="faultfirst-junit-")
        config.add_cleanup(functools.partial(shutil.rmtree, folder, ignore_errors=True))
        config.option.xmlpath = os.path.join(folder, "junit.xml")
    return _Channel(fd, kinds)


def _report_text(kind: str, config: pytest.Config, started_at: float) -> str:
    grade = config.stash[SESSION].grade
    if kind == "json":
        return reports.json_text(grade, harness_version=__version__, started_at=started_at)
    if kind == "md":
        return reports.grade_markdown(grade)
    if kind == "html":
        return html_report.grade_html(grade, started_at=started_at)
    if kind == "gradescope":
        return gradescope.gradescope_text(grade)
    return Path(config.option.xmlpath).read_text(encoding="utf-8")  # junit: pytest's own


def _concurrency(value: str) -> int:
    if value == "auto":
        return lanes.auto()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, or auto, not {value!r}")
    return count


def _lane_count(session: pytest.Session) -> int:
    """How many lanes to run the session's items in: 1 (pytest's own loop) unless there are
    several, all scenarios, and nothing stops them (collection errors, --collect-only)."""
    config, grading = session.config, session.config.stash[SESSION]
    if session.testsfailed or config.option.collectonly:
        return 1
    if not all(grading.scenario(item) is not None for item in session.items):
        return 1
    return min(config.getoption("concurrency"), len(session.items))


def _isolation(config: pytest.Config, mode: str) -> isolation.Level:
    chosen = config.getoption("app_isolation")
    if mode == "thread":
        level = isolation.Level(isolation.NONE, "thread mode runs the app inside the grader")
    elif chosen == isolation.NONE:
        level = isolation.Level(isolation.NONE, "turned off (--app-isolation none)")
    else:
        level = isolation.detect()
    if chosen == "required" and not level.boxed:
        raise pytest.UsageError(f"--app-isolation required, but {level.why_not}")
    return level


def _app_mode(chosen: str, submission: Path) -> str:
    """The mode `auto` stands for: a thread only for this installation's own app."""
    if chosen != "auto":
        return chosen
    return "thread" if submission == INSTALLATION else "subprocess"


def _submission_folder(config: pytest.Config) -> Path:
    folder = (config.invocation_params.dir / Path(config.getoption("submission"))).resolve()
    if folder.name == "exercise_app" and (folder / "app.py").is_file():
        return folder.parent
    return folder

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

import sys
import threading
import time
import typing
from pathlib import Path

import pytest

from . import __version__, sandbox
from .app_client import AppClient
from .app_pool import MODES, AppPool, RunningApp
from .fake_llm import FakeLLM
from .grading import gradescope, html_report, marks, reports
from .grading.evidence import UserActivity
from .grading.session import GradingSession, ScenarioRun
from .grading.tasks import CORE_TASKS, parse_tasks
from .launcher import SCENARIO_SETTINGS, AppSettings, scenario_settings
from .sandbox import Limits

SESSION = pytest.StashKey[GradingSession]()
RUN_TIMER = pytest.StashKey[threading.Timer]()
RUN = pytest.StashKey[ScenarioRun]()
NEXT = pytest.StashKey["pytest.Item | None"]()


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
        choices=MODES,
        default="thread",
        help="run the app in a thread of the grader (thread, the default: fast) or in a child "
        "process (subprocess: isolated, as `faultfirst grade` does)",
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
    submission = _submission_folder(config)
    mode = config.getoption("app_mode")
    limits = Limits(
        **{option.field: config.getoption(f"app_{option.flag}") for option in sandbox.OPTIONS}
    )
    python = config.getoption("app_python")
    config.stash[SESSION] = GradingSession(
        submission=submission,
        tasks=tasks,
        seed=config.getoption("fault_seed"),
        app_mode=mode,
        time_limit=config.getoption("scenario_timeout"),
        pool=lambda: AppPool(submission, mode, limits=limits, python=python),
        label=config.getoption("submission_label"),
    )


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
    if (seconds := session.config.getoption("run_timeout")) is not None:
        session.config.stash[RUN_TIMER] = grading.limit_run(session, seconds)


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
    item.stash[NEXT] = nextitem  # so that the next scenario's app can start in the background


def pytest_terminal_summary(terminalreporter: typing.Any, config: pytest.Config) -> None:
    grading = config.stash[SESSION]
    if not grading.grade.results:
        return
    terminalreporter.write_sep("=", "faultfirst score board")
    for line in grading.board():
        terminalreporter.write_line(line)


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
    fake_llm_server.reset(seed=seed)
    yield fake_llm_server
    fake_llm_server.reset(seed=seed)


@pytest.fixture
def app_settings(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> AppSettings:
    """The settings the app under test gets: the harness's, and this scenario's
    ``@pytest.mark.app_settings(...)`` overrides. Scenarios derive their tolerances from them."""
    overrides = marks.settings_of(request.node, SCENARIO_SETTINGS)
    return AppSettings(scenario_settings(fake_llm.base_url, **overrides))


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
        upcoming = scenario_settings(fake_llm.base_url, **overrides)
    with grading.app_for(run, app_settings.environ, upcoming) as running:
        yield running


@pytest.fixture
def client(app: RunningApp, request: pytest.FixtureRequest) -> AppClient:
    """The app's users, over HTTP (see `harness.app_client.AppClient`)."""
    return AppClient(app.url, request.node.stash[RUN].users)


@pytest.fixture
def question(request: pytest.FixtureRequest) -> str:
    """A question about the papers that no other scenario asks."""
    name = getattr(request.node, "originalname", request.node.name).removeprefix("test_")
    return f"What do the papers say about latency? (asked by {name.replace('_', ' ')})"


def _submission_folder(config: pytest.Config) -> Path:
    folder = (config.invocation_params.dir / Path(config.getoption("submission"))).resolve()
    if folder.name == "exercise_app" and (folder / "app.py").is_file():
        return folder.parent
    return folder

"""The faultfirst pytest plugin (registered through the ``pytest11`` entry point).

For any test suite, it gives the fake provider:

- ``fake_llm``: a fresh-looking `FakeLLM` for each test (no faults, empty ledger);
- ``fake_llm_server``: the same provider, one per session (starting one costs ~25 ms, stopping
  one ~0.15 s, so tests share it and `fake_llm` resets it around each test).

For graded scenarios (tests marked ``@pytest.mark.scenario``), it also starts the submission's app
afresh for every scenario (``app``, ``client``), scores the results, prints the score board and
writes the reports. Its options (``--faultfirst-WORD``) and configuration keys (``faultfirst_WORD``)
are `harness.plugin_options`'.
"""

from __future__ import annotations

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

from . import __version__, plugin_options, vocabulary
from .app_client import AppClient
from .fake_llm import FakeLLM
from .grading import channel, gradescope, html_report, lanes, marks, reports, scoreboard
from .grading.colour import Paint
from .grading.evidence import UserActivity
from .grading.results import Isolation
from .grading.session import GradingSession, ScenarioRun
from .hosting import isolation, preload
from .hosting.app_pool import AppPool, RunningApp
from .hosting.launcher import SCENARIO_SETTINGS, AppSettings, forkable, scenario_settings
from .hosting.template import SharedTemplate

INSTALLATION = Path(__file__).resolve().parents[1]  # holds harness/, scenarios/, exercise_app/
SETTINGS = pytest.StashKey[plugin_options.Settings]()
SESSION = pytest.StashKey[GradingSession]()
CHANNEL = pytest.StashKey["_Channel"]()
RUN_TIMER = pytest.StashKey[threading.Timer]()
RUN = pytest.StashKey[ScenarioRun]()
NEXT = pytest.StashKey["pytest.Item | None"]()
FORKED = pytest.StashKey[bool]()  # apps are forked from a template (`harness.hosting.template`)
SHARED = pytest.StashKey[tuple[str, ...]]()  # what that template imports ahead (`preload`)


def pytest_addoption(parser: pytest.Parser) -> None:
    plugin_options.add_options(parser)


def settings(config: pytest.Config) -> plugin_options.Settings:
    """The run's faultfirst settings (`harness.plugin_options`): the command line's, else the
    configuration file's, else the defaults."""
    return config.stash[SETTINGS]


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
    settings = config.stash[SETTINGS] = plugin_options.read(config)
    if not hasattr(config, "workerinput"):  # once a run: not again in each xdist worker
        for old, new in plugin_options.old_names_used(config).items():
            print(vocabulary.notice(old, new), file=sys.stderr)
    if settings.grade_fd is not None:
        config.stash[CHANNEL] = _open_channel(config, settings)
    submission = _submission_folder(config, settings.submission)
    mode = _app_mode(settings.app_mode, submission)
    limits, python = settings.limits, settings.app_python
    level = _isolation(settings.isolation, mode)
    box = level.name if level.boxed else None
    if settings.isolated_network:
        isolation.bring_loopback_up()
    forked = mode == "subprocess" and forkable(python, box, limits)
    share = config.stash[SHARED] = preload.shared_imports(submission) if forked else ()
    config.stash[SESSION] = GradingSession(
        submission=submission,
        tasks=settings.tasks,
        seed=settings.seed,
        app_mode=mode,
        time_limit=settings.scenario_timeout,
        pool=lambda template: AppPool(
            submission, mode, limits=limits, python=python, box=box, template=template, share=share
        ),
        label=settings.submission_label,
    )
    config.stash[FORKED] = forked
    network = "own" if settings.isolated_network else "shared"
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
    grading, seconds = config.stash[SESSION], config.stash[SETTINGS].run_timeout
    count = _lane_count(session)
    if count < 2:
        if seconds is not None and _has_scenarios(session):
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
        return SharedTemplate(lanes, config.stash[SHARED])
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
    if CHANNEL in config.stash:
        return  # `faultfirst grade` prints the board itself, from the grade it is sent
    terminalreporter.write_sep("=", scoreboard.TITLE)
    # Coloured as pytest colours its own lines: --color, NO_COLOR, FORCE_COLOR, a terminal.
    paint, note = Paint(terminalreporter.hasmarkup), grading.partial()
    for line in scoreboard.scoreboard(grading.grade, paint=paint, note=note):
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
    grade.duration = round(time.time() - started_at, 3)  # as the JSON keeps it
    paths = config.stash[SETTINGS].reports
    if path := paths.get("json"):
        reports.write_json(path, grade, harness_version=__version__, started_at=started_at)
    if path := paths.get("md"):
        reports.write_markdown(path, grade)
    if path := paths.get("html"):
        html_report.write_html(path, grade, started_at=started_at)
    if path := paths.get("gradescope"):
        gradescope.write_gradescope(path, grade)
    if CHANNEL in config.stash:
        to = config.stash[CHANNEL]
        channel.send(to.fd, {kind: _report_text(kind, config, started_at) for kind in to.kinds})
        session.exitstatus = pytest.ExitCode.OK  # the grade is sent: this run did its job


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_llm_server(pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The session's fake provider, serving on 127.0.0.1 and a free port."""
    with FakeLLM(seed=pytestconfig.stash[SETTINGS].seed) as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM, pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The fake provider, reset for this test: instant answers, no faults, an empty ledger."""
    seed = pytestconfig.stash[SETTINGS].seed
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


def _open_channel(config: pytest.Config, settings: plugin_options.Settings) -> _Channel:
    """Check the grade's pipe (--faultfirst-grade-fd); keep it from the apps this run starts."""
    fd, kinds = settings.grade_fd, settings.grade_fd_reports
    assert fd is not None
    try:
        os.set_inheritable(fd, False)
    except OSError:
        option = vocabulary.pytest_option("grade-fd")
        raise pytest.UsageError(f"{option}: {fd} is not an open file descriptor") from None
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


def _lane_count(session: pytest.Session) -> int:
    """How many lanes to run the session's items in: 1 (pytest's own loop) unless there are
    several, all scenarios, and nothing stops them (collection errors, --collect-only)."""
    config, grading = session.config, session.config.stash[SESSION]
    if session.testsfailed or config.option.collectonly:
        return 1
    if not all(grading.scenario(item) is not None for item in session.items):
        return 1
    return min(config.stash[SETTINGS].lane_count(), len(session.items))


def _has_scenarios(session: pytest.Session) -> bool:
    """Whether the session runs scenarios: a run's time limit is theirs, not other tests'."""
    grading = session.config.stash[SESSION]
    return any(grading.scenario(item) is not None for item in session.items)


def _isolation(chosen: str, mode: str) -> isolation.Level:
    option = vocabulary.pytest_option("isolation")
    if mode == "thread":
        level = isolation.Level(isolation.NONE, "thread mode runs the app inside the grader")
    elif chosen == isolation.NONE:
        level = isolation.Level(isolation.NONE, f"turned off ({option} none)")
    else:
        level = isolation.detect()
    if chosen == "required" and not level.enough:
        raise pytest.UsageError(f"{option} required, but {level.why_not}")
    return level


def _app_mode(chosen: str, submission: Path) -> str:
    """The mode `auto` stands for: a thread only for this installation's own app."""
    if chosen != "auto":
        return chosen
    return "thread" if submission == INSTALLATION else "subprocess"


def _submission_folder(config: pytest.Config, given: str) -> Path:
    folder = (config.invocation_params.dir / Path(given)).resolve()
    if folder.name == "exercise_app" and (folder / "app.py").is_file():
        return folder.parent
    return folder

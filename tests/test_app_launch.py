"""Starting the app under test: in a thread of the grader (`AppThread`) and through `AppPool`,
which keeps a child process warm for the next scenario and remembers apps that cannot start."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
import typing
from pathlib import Path

import httpx
import pytest

from harness.hosting.app_pool import AppPool
from harness.hosting import app_thread
from harness.hosting.app_thread import AppThread
from harness.hosting.launcher import AppDidNotStart, AppProcess

PROBE = "FAULTFIRST_TEST_PROBE"  # a setting nobody else uses
SETTINGS = {PROBE: "on"}

# Answers with its folder's name, how many times its `state` module saw the app imported, and
# what PROBE was in its environment.
APP = """
    import os

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from . import state

    state.imports += 1

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def answer(request):
        return JSONResponse(
            {"answer": NAME, "imports": state.imports, "probe": os.environ.get(PROBE)}
        )

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/api/answer", answer, methods=["POST"])]
    )
"""

LIFESPAN_FAILS = """
    import contextlib

    from starlette.applications import Starlette

    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("the database is not there")
        yield

    app = Starlette(lifespan=lifespan)
"""

# Hangs at import until a file named "release" appears next to exercise_app/ (30 s at most), so
# that each test can end the import thread it leaves behind.
HANGS = """
    import pathlib
    import time

    release = pathlib.Path(__file__).parents[1] / "release"
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    raise RuntimeError("released")
"""

# Notes every import in imports.log next to exercise_app/, then fails on line 6.
FAILS = """\
import pathlib

with open(pathlib.Path(__file__).parents[1] / "imports.log", "a") as log:
    log.write("imported\\n")

raise ValueError("LLM_BASE_URL is not a URL")
"""


def submission(folder: Path, app: str = APP, *, name: str | None = None) -> Path:
    package = folder / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "state.py").write_text("imports = 0\n")
    source = textwrap.dedent(app).replace("NAME", repr(name or folder.name))
    source = source.replace("PROBE", repr(PROBE))
    (package / "app.py").write_text(source)
    return folder


def ask(url: str) -> dict[str, typing.Any]:
    reply = httpx.post(url + "/api/answer", json={"question": "?"}, trust_env=False)
    reply.raise_for_status()
    body: dict[str, typing.Any] = reply.json()
    return body


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", trust_env=False, timeout=2).status_code == 200
    except httpx.ConnectError:
        return False


@pytest.fixture(autouse=True)
def isolated_imports() -> typing.Iterator[None]:
    """AppThread imports each submission as `exercise_app`: leave the process's own
    `exercise_app` modules (the starter, imported by other tests) and sys.path as they were,
    and check that every thread a test started has ended."""
    def ours() -> dict[str, typing.Any]:
        return {
            name: module
            for name, module in sys.modules.items()
            if name == "exercise_app" or name.startswith("exercise_app.")
        }

    saved, path, threads = ours(), list(sys.path), set(threading.enumerate())
    yield
    for name in ours():
        del sys.modules[name]
    sys.modules.update(saved)
    assert sys.path == path, "an app left its folder on sys.path"
    assert set(threading.enumerate()) <= threads, "a thread outlived its test"


@pytest.fixture
def probe_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROBE, raising=False)


# -- AppThread ------------------------------------------------------------------------------------


def test_an_app_thread_serves_the_app(tmp_path: Path) -> None:
    with AppThread(submission(tmp_path / "first"), SETTINGS) as app:
        url = app.url
        assert url.startswith("http://127.0.0.1:")
        assert healthy(url)
        assert ask(url)["answer"] == "first"
    assert not healthy(url)


@pytest.mark.usefixtures("probe_unset")
def test_settings_are_in_the_environment_while_the_app_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTFIRST_TEST_EXISTING", "before")
    settings = {PROBE: "on", "FAULTFIRST_TEST_EXISTING": "during"}
    app = AppThread(submission(tmp_path / "app"), settings)
    try:
        app.start()
        assert os.environ[PROBE] == "on"
        assert os.environ["FAULTFIRST_TEST_EXISTING"] == "during"
        assert ask(app.url)["probe"] == "on"  # the app sees them too
    finally:
        app.stop()
    assert PROBE not in os.environ  # it did not exist before
    assert os.environ["FAULTFIRST_TEST_EXISTING"] == "before"


def test_every_start_imports_the_submission_afresh(tmp_path: Path) -> None:
    first, second = submission(tmp_path / "first"), submission(tmp_path / "second")
    answers = []
    for folder in (first, second, first):
        with AppThread(folder, SETTINGS) as app:
            body = ask(app.url)
            answers.append((body["answer"], body["imports"]))
    # Each its own code, and no module kept from an earlier start (its counter would be 2).
    assert answers == [("first", 1), ("second", 1), ("first", 1)]


@pytest.mark.usefixtures("probe_unset")
def test_an_import_error_is_one_line_naming_it_and_where(tmp_path: Path) -> None:
    folder = submission(tmp_path / "app", FAILS)
    with pytest.raises(AppDidNotStart) as raised, AppThread(folder, SETTINGS):
        pass
    message = str(raised.value)
    assert message == (
        "the app failed to import: ValueError: LLM_BASE_URL is not a URL "
        "(exercise_app/app.py, line 6)"
    )
    assert PROBE not in os.environ  # a failed start puts the environment back too


def test_an_error_in_a_library_names_the_submissions_own_line(tmp_path: Path) -> None:
    app = """\
import json

SETTINGS = json.loads("{not json")
"""
    with pytest.raises(AppDidNotStart) as raised, AppThread(submission(tmp_path / "app", app), {}):
        pass
    message = str(raised.value)
    assert message.startswith("the app failed to import: JSONDecodeError: "), message
    assert message.endswith(" (exercise_app/app.py, line 3)"), message
    assert "\n" not in message


def test_a_folder_without_exercise_app_did_not_start(tmp_path: Path) -> None:
    with pytest.raises(AppDidNotStart, match="has no exercise_app/ folder to run"):
        with AppThread(tmp_path, SETTINGS):
            pass


def test_a_lifespan_that_fails_did_not_start(tmp_path: Path) -> None:
    folder = submission(tmp_path / "app", LIFESPAN_FAILS)
    with pytest.raises(AppDidNotStart) as raised, AppThread(folder, SETTINGS):
        pass
    assert str(raised.value) == (
        "the app stopped while starting: RuntimeError: the database is not there"
    )


def import_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "app-import"}


@pytest.fixture
def hanging(tmp_path: Path) -> typing.Iterator[Path]:
    """A submission whose import hangs; released (and its import threads joined) afterwards."""
    before = import_threads()
    folder = submission(tmp_path / "hangs", HANGS)
    yield folder
    (folder / "release").touch()
    for thread in import_threads() - before:
        thread.join(10)
        assert not thread.is_alive()


def test_an_import_that_hangs_did_not_start(hanging: Path) -> None:
    app = AppThread(hanging, SETTINGS)
    started = time.monotonic()
    try:
        with pytest.raises(AppDidNotStart) as raised:
            app.start(timeout=1)
    finally:
        app.stop()
    # Generous: the limit is 1 s, and a loaded machine may add a little; the import itself
    # would go on for 30 s.
    assert time.monotonic() - started < 5
    assert str(raised.value) == "importing exercise_app.app took over 1s"


def test_after_an_import_that_hangs_the_next_start_says_why_at_once(
    hanging: Path, tmp_path: Path
) -> None:
    # The import left behind holds Python's import lock for exercise_app.app: any later import of
    # it in this process would wait, so the next start fails at once and says what to do.
    app = AppThread(hanging, SETTINGS)
    try:
        with pytest.raises(AppDidNotStart):
            app.start(timeout=0.5)
    finally:
        app.stop()
    good = AppThread(submission(tmp_path / "good"), SETTINGS)
    try:
        with pytest.raises(AppDidNotStart, match="--faultfirst-app-mode subprocess"):
            good.start(timeout=1)
    finally:
        good.stop()


def test_a_parse_started_inside_a_parse_fails_instead_of_waiting() -> None:
    # As when the garbage collector, run by a parse, finalizes an asyncio task whose error is
    # then logged with a traceback, which parses source: the inner parse must not wait for the
    # lock its own thread holds (that hung a calibration run for good).
    inner: list[BaseException] = []

    def parse(source: str) -> str:
        if source == "outer":
            try:
                serialised("inner")
            except SyntaxError as error:
                inner.append(error)
        return f"tree of {source}"

    serialised = app_thread._serialised(parse)
    results: list[str] = []
    parsing = threading.Thread(target=lambda: results.append(serialised("outer")), daemon=True)
    parsing.start()
    parsing.join(timeout=5)
    assert not parsing.is_alive(), "the inner parse waited for the lock its own thread held"
    assert results == ["tree of outer"]
    assert len(inner) == 1  # the inner parse failed as a parse does, which its callers handle
    assert serialised("again") == "tree of again"  # and the lock is free for the next


# -- AppPool --------------------------------------------------------------------------------------


@pytest.fixture
def pool(request: pytest.FixtureRequest, tmp_path: Path) -> typing.Iterator[AppPool]:
    mode, app = request.param if isinstance(request.param, tuple) else (request.param, APP)
    pool = AppPool(submission(tmp_path / "app", app), mode)
    yield pool
    pool.close()


@pytest.mark.parametrize("pool", ["subprocess"], indirect=True)
def test_the_pool_keeps_the_next_app_warm(pool: AppPool) -> None:
    first = pool.start(SETTINGS, upcoming=SETTINGS)
    first_url = first.url
    assert isinstance(first, AppProcess)
    assert healthy(first_url)
    assert pool._spare is not None and pool._spare[0] == SETTINGS
    spare = pool._spare[1]
    pool.stop(first)
    assert not healthy(first_url)

    second = pool.start(SETTINGS)
    try:
        assert pool._spare is None  # taken, and no other started: nothing more was upcoming
        assert second is spare.result()
        assert isinstance(second, AppProcess)
        assert second.url != first_url
        assert first._process is not None and second._process is not None
        assert second._process.pid != first._process.pid
        assert ask(second.url) == {"answer": "app", "imports": 1, "probe": "on"}
    finally:
        pool.stop(second)


@pytest.mark.parametrize("pool", ["subprocess"], indirect=True)
def test_a_spare_for_other_settings_is_not_used(pool: AppPool) -> None:
    other = {PROBE: "other"}
    first = pool.start(SETTINGS, upcoming=other)
    pool.stop(first)
    assert pool._spare is not None
    spare = pool._spare[1].result()
    spare_url = spare.url
    second = pool.start(SETTINGS)
    try:
        assert second is not spare
        assert not healthy(spare_url)  # stopped, not left running
        assert ask(second.url)["probe"] == "on"
    finally:
        pool.stop(second)


@pytest.mark.parametrize(
    "pool",
    [pytest.param((mode, FAILS), id=mode) for mode in ("subprocess", "thread")],
    indirect=True,
)
def test_the_pool_remembers_an_app_that_did_not_start(pool: AppPool) -> None:
    with pytest.raises(AppDidNotStart) as first:
        pool.start(SETTINGS, upcoming=SETTINGS)
    assert "ValueError: LLM_BASE_URL is not a URL" in str(first.value)
    assert pool._spare is None  # no spare of an app that cannot start
    with pytest.raises(AppDidNotStart) as second:
        pool.start(SETTINGS, upcoming=SETTINGS)
    assert second.value is first.value
    assert (pool.folder / "imports.log").read_text().splitlines() == ["imported"]


@pytest.mark.parametrize("pool", ["subprocess"], indirect=True)
def test_closing_the_pool_stops_the_spare(pool: AppPool) -> None:
    pool.stop(pool.start(SETTINGS, upcoming=SETTINGS))
    assert pool._spare is not None
    spare = pool._spare[1].result()
    assert isinstance(spare, AppProcess) and spare._process is not None
    url = spare.url
    assert healthy(url)
    pool.close()
    assert not healthy(url)
    assert spare._process.poll() is not None


@pytest.mark.usefixtures("probe_unset")
@pytest.mark.parametrize("pool", ["thread"], indirect=True)
def test_in_thread_mode_stop_puts_the_environment_back(pool: AppPool) -> None:
    app = pool.start(SETTINGS, upcoming=SETTINGS)
    url = app.url
    try:
        assert pool._spare is None  # threads start in milliseconds: no spare
        assert os.environ[PROBE] == "on"
        assert ask(url)["probe"] == "on"
    finally:
        pool.stop(app)
    assert PROBE not in os.environ
    assert not healthy(url)

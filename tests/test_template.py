"""Apps forked from the warm template (`harness.hosting.template`): each is the app a fresh
``python -m uvicorn`` would be, with only its own settings, its own import of the submission, its
own end; and nothing outlives the template."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
import typing
from pathlib import Path

import httpx
import pytest

from harness.hosting.app_pool import AppPool
from harness.hosting.launcher import PASSED_THROUGH, AppDidNotStart, AppProcess
from harness.hosting.sandbox import Limits
from harness.hosting.template import ForkedProcess, SharedTemplate, Template

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the template needs Linux")

SETTINGS = {"FAULTFIRST_TEST_SETTING": "on"}

# Answers with its environment, its pid, and how often its `state` module saw it imported.
APP = """
    import os
    import signal

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from . import state

    state.imports += 1
    print("importing the app", flush=True)

    def opened():
        names = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                names.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass  # the listing's own
        return names

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def answer(request):
        return JSONResponse(
            {
                "environment": dict(os.environ),
                "pid": os.getpid(),
                "imports": state.imports,
                "sigpipe ignored": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
                "open": opened(),
            }
        )

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/api/answer", answer, methods=["POST"])]
    )
"""


def submission(folder: Path, app: str = APP) -> Path:
    package = folder / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "state.py").write_text("imports = 0\n")
    (package / "app.py").write_text(textwrap.dedent(app))
    return folder


def ask(app: AppProcess) -> dict[str, typing.Any]:
    reply = httpx.post(app.url + "/api/answer", json={"question": "?"}, trust_env=False)
    reply.raise_for_status()
    body: dict[str, typing.Any] = reply.json()
    return body


def ended(process: ForkedProcess, within: float = 5.0) -> int | None:
    try:
        return process.wait(within)
    except Exception:  # noqa: BLE001 - still running
        return None


@pytest.fixture
def template() -> typing.Iterator[Template]:
    template = Template.start()
    yield template
    template.close()


def forked(folder: Path, template: Template) -> AppProcess:
    # Unboxed: a box's app could not be read from here the same way; test_untrusted grades boxed.
    return AppProcess(folder, SETTINGS, limits=Limits(), template=template)


def test_a_forked_app_has_its_settings_and_nothing_of_the_grader(
    tmp_path: Path, template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTFIRST_TEST_SECRET", "the grader's")
    with forked(submission(tmp_path / "app"), template) as app:
        assert isinstance(app._process, ForkedProcess)
        seen = ask(app)
        output = app.output()
    expected = {name for name in PASSED_THROUGH if name in os.environ}
    assert set(seen["environment"]) == expected | {"PYTHONUNBUFFERED", *SETTINGS}
    assert seen["environment"]["FAULTFIRST_TEST_SETTING"] == "on"
    # As in any Python: a write to a connection its client closed raises, rather than killing.
    assert seen["sigpipe ignored"]
    assert "importing the app" in output  # its output, unbuffered, in its own log


def test_a_forked_app_holds_nothing_of_the_template(tmp_path: Path, template: Template) -> None:
    """Not its own status pipe (it could write itself a clean exit), nor the pidfds of the
    template's other apps: only what an exec'd app would have."""
    folder = submission(tmp_path / "app")
    with forked(folder, template) as first, forked(folder, template) as second:
        seen = [ask(first)["open"], ask(second)["open"]]
    for open_files in seen:
        assert not [name for name in open_files if name.startswith("pipe:") or "pidfd" in name]


def test_every_fork_imports_the_submission_afresh(tmp_path: Path, template: Template) -> None:
    folder = submission(tmp_path / "app")
    seen = []
    for _ in range(3):
        with forked(folder, template) as app:
            seen.append(ask(app))
    assert [answer["imports"] for answer in seen] == [1, 1, 1]
    assert len({answer["pid"] for answer in seen}) == 3


def test_a_forked_app_that_exits_while_starting_says_why(tmp_path: Path, template: Template) -> None:
    failing = """
        import os
        print("Traceback (most recent call last):\\nValueError: LLM_BASE_URL is not a URL")
        os._exit(3)
    """
    app = forked(submission(tmp_path / "app", failing), template)
    with pytest.raises(AppDidNotStart) as error:
        app.start()
    app.stop()
    assert str(error.value) == "the app exited while starting: ValueError: LLM_BASE_URL is not a URL"


def test_a_forked_app_killed_by_a_signal_says_so(tmp_path: Path, template: Template) -> None:
    with forked(submission(tmp_path / "app"), template) as app:
        assert app._process is not None
        os.killpg(app._process.pid, signal.SIGKILL)
        reason = app.exit_reason(wait=5.0)
    assert reason == (
        "the app's process ended during the scenario: it was killed (SIGKILL): out of memory, "
        "or stopped by the grader"
    )


def test_apps_end_with_their_template(tmp_path: Path, template: Template) -> None:
    app = forked(submission(tmp_path / "app"), template)
    app.start()
    try:
        pid = ask(app)["pid"]
        assert template._process is not None and isinstance(app._process, ForkedProcess)
        template._process.kill()
        assert ended(app._process) == -signal.SIGKILL  # no status: the template was killed
        deadline = time.monotonic() + 5  # the kernel's PR_SET_PDEATHSIG, at once in practice
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.01)
        assert not Path(f"/proc/{pid}").exists()
    finally:
        app.stop()
    assert not template.running


def test_the_pool_starts_another_template_when_its_own_was_killed(tmp_path: Path) -> None:
    pool = AppPool(submission(tmp_path / "app"), "subprocess", limits=Limits())
    try:
        first = pool.start(SETTINGS)
        pool.stop(first)
        killed = pool._template
        assert killed is not None and killed._process is not None
        killed._process.kill()
        killed._process.wait()
        second = pool.start(SETTINGS)
        try:
            assert pool._template is not killed and pool._template is not None
            assert isinstance(second, AppProcess) and ask(second)["imports"] == 1
        finally:
            pool.stop(second)
    finally:
        pool.close()


def test_an_app_on_another_python_starts_the_execd_way(tmp_path: Path) -> None:
    # A submission's own virtualenv holds packages it chose: never imported by the template.
    python = Path(sys.executable).with_name("python3")  # the same, under another name
    if str(python) == sys.executable or not python.exists():
        pytest.skip("no other name for this Python")
    pool = AppPool(submission(tmp_path / "app"), "subprocess", limits=Limits(), python=str(python))
    try:
        assert pool._template is None
        app = pool.start(SETTINGS)
        try:
            assert isinstance(app, AppProcess) and not isinstance(app._process, ForkedProcess)
        finally:
            pool.stop(app)
    finally:
        pool.close()


def test_a_closed_template_leaves_no_process(tmp_path: Path) -> None:
    template = Template.start()
    assert template._process is not None
    pid = template._process.pid
    template.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.01)
    assert not Path(f"/proc/{pid}").exists()


def test_a_shared_template_serves_each_channel_until_the_last_closes(tmp_path: Path) -> None:
    """As a run's lanes use it: each takes a channel of its own (here one process takes one, so
    the other closes at once); the template serves the channels still open, and ends when the
    last one closes."""
    shared = SharedTemplate(2)
    pid = shared._process.pid
    lane = shared.take(0)
    assert lane._process is None  # only the process that started it reaps it
    try:
        with forked(submission(tmp_path / "app"), lane) as app:
            assert ask(app)["imports"] == 1
        assert lane.running
    finally:
        lane.close()
    shared._process.wait(5.0)  # every channel closed: it ended by itself
    assert not Path(f"/proc/{pid}").exists()

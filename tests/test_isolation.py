"""`harness.hosting.isolation` and `box`: what an app in a box can see, and what it cannot."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from harness import cli
from harness.hosting import isolation
from harness.hosting.launcher import AppDidNotStart, AppProcess

LEVEL = isolation.detect()
boxed = pytest.mark.skipif(not LEVEL.boxed, reason=f"no boxes here: {LEVEL.why_not}")

# An app that answers GET /look with what it can see of the machine.
LOOKING_APP = """
    import os
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def _exists(path):
        return os.path.exists(path)

    async def look(request):
        return JSONResponse({
            "uid": os.getuid(),
            "pid": os.getpid(),
            "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "root": sorted(os.listdir("/")),
            "cwd": os.getcwd(),
            "grader": _exists(@HARNESS@),
            "tmp_writable": os.access("/tmp", os.W_OK),
            "app_writable": os.access("/app", os.W_OK),
        })

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/look", look), Route("/healthz", healthz)])
"""


def looking_app(folder: Path) -> Path:
    package = folder / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    harness = repr(str(Path(isolation.__file__).parents[1]))
    (package / "app.py").write_text(textwrap.dedent(LOOKING_APP).replace("@HARNESS@", harness))
    return folder


def test_the_level_says_what_it_is_in_one_line() -> None:
    none = isolation.Level(isolation.NONE, "boxes need root; grade as root")
    assert none.summary() == (
        "isolation: none — the app ran as the grader's user: boxes need root; grade as root"
    )
    assert not none.boxed and isolation.Level(isolation.BOXED).boxed


@boxed
def test_a_boxed_app_sees_its_own_files_and_processes_only(tmp_path: Path) -> None:
    with AppProcess(looking_app(tmp_path / "app"), {}, boxed=True) as app:
        seen = httpx.get(f"{app.url}/look", trust_env=False).json()
        uid = seen["uid"]
        assert uid in isolation.UIDS
        assert isolation.processes_of(uid)  # its uid is its own while it runs
    assert seen["pid"] == 2  # the box's init is 1, and hidden from it
    assert seen["processes"] == [2]
    assert seen["cwd"] == "/app" and not seen["grader"]
    assert seen["tmp_writable"] and not seen["app_writable"]
    assert "home" not in seen["root"]  # the system, the Python, the app: no one's files
    assert isolation.processes_of(uid) == []  # and nothing of it is left


@boxed
def test_two_apps_at_once_get_two_uids() -> None:
    with isolation.Lease.take() as first, isolation.Lease.take() as second:
        assert first.uid != second.uid
    again = isolation.Lease.take()
    again.release()


@boxed
def test_a_box_that_cannot_be_built_fails_the_start_in_one_line(tmp_path: Path) -> None:
    folder = looking_app(tmp_path)
    app = AppProcess(folder, {}, boxed=True, python="/nonexistent/python")
    with pytest.raises(AppDidNotStart, match=r"^the app exited while starting: faultfirst box: "):
        app.start(timeout=10)
    app.stop()


@pytest.mark.skipif(
    shutil.which("unshare") is None or not LEVEL.boxed, reason="needs root and unshare"
)
def test_loopback_comes_up_in_a_fresh_network_namespace() -> None:
    code = (
        "import socket; from harness.hosting import isolation; isolation.bring_loopback_up(); "
        "s = socket.create_server(('127.0.0.1', 0)); "
        "socket.create_connection(s.getsockname(), timeout=2); print('up')"
    )
    done = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.stdout.strip() == "up", done.stderr


def test_isolation_required_where_there_are_no_boxes_refuses_to_grade(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    none = isolation.Level(isolation.NONE, "boxes need root; grade as root")
    monkeypatch.setattr(isolation, "detect", lambda: none)
    assert cli.main(["grade", "--isolation", "required"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "faultfirst grade: --isolation required, but boxes need root; grade as root"
    ]

"""The limits an app under test keeps (`harness.hosting.sandbox`), seen from the `AppProcess` that
starts it: set in the child, said in one line when broken, and nothing left running after a
stop."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from harness.hosting.launcher import AppDidNotStart, AppProcess
from harness.hosting.sandbox import Limits, session_members

APP = """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/healthz", healthz)])
"""


def app_folder(folder: Path, after: str = "") -> Path:
    package = folder / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(APP) + textwrap.dedent(after))
    return folder


def limits_of(pid: int) -> dict[str, str]:
    """Soft limits by name, from /proc/PID/limits."""
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {line[:26].strip(): line[26:47].strip() for line in lines}


def test_the_child_keeps_the_limits_it_was_given(tmp_path: Path) -> None:
    limits = Limits(memory_mb=512, cpu_seconds=7, processes=5)
    with AppProcess(app_folder(tmp_path), {}, limits=limits) as app:
        assert httpx.get(f"{app.url}/healthz").status_code == 200
        assert app._process is not None
        seen = limits_of(app._process.pid)
        assert seen["Max address space"] == str(512 * 2**20)
        assert seen["Max cpu time"] == "7"
        assert seen["Max core file size"] == "0"
        assert app.exit_reason() is None


def test_an_app_that_takes_too_much_memory_says_so(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "_hog = bytearray(1024 * 2**20)\n")
    with pytest.raises(AppDidNotStart, match=r"^the app exited while starting: MemoryError$"):
        with AppProcess(folder, {}, limits=Limits(memory_mb=512)):
            pass


def test_an_app_that_spins_is_stopped_at_its_cpu_limit(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "while True:\n    pass\n")
    with pytest.raises(AppDidNotStart, match=r"used more than 1s of CPU time \(a busy loop\?\)$"):
        with AppProcess(folder, {}, limits=Limits(cpu_seconds=1)):
            pass


def test_a_stop_ends_what_the_app_started_even_in_another_process_group(tmp_path: Path) -> None:
    folder = app_folder(
        tmp_path,
        """
        import subprocess

        _helper = subprocess.Popen(["sleep", "61"], process_group=0)
        """,
    )
    app = AppProcess(folder, {}, limits=Limits())
    with app:
        assert app._process is not None
        session = app._process.pid
        assert len(session_members(session)) == 2  # the app and its helper
    assert session_members(session) == []


def test_without_limits_the_app_runs_plain_uvicorn(tmp_path: Path) -> None:
    with AppProcess(app_folder(tmp_path), {}) as app:
        assert app._process is not None
        command = Path(f"/proc/{app._process.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:3] == [b"-m", b"uvicorn"]
        assert limits_of(app._process.pid)["Max cpu time"] == "unlimited"


def test_the_app_gets_its_settings_and_none_of_the_graders_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-graders-own")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-the-graders")
    with AppProcess(app_folder(tmp_path), {"PRIMARY_MODEL": "fake-large"}, limits=Limits()) as app:
        assert app._process is not None
        environ = Path(f"/proc/{app._process.pid}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
    assert "PRIMARY_MODEL" in names
    assert not names & {"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY"}
    passed_through = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONUNBUFFERED"}
    assert names <= passed_through | {"PRIMARY_MODEL"}

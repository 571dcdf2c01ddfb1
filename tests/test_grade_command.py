"""`faultfirst grade` end to end, as an interviewer runs it: on submissions that tamper with the
grader, hang, crash, fail to import, need a package, or start too many processes.

Each grades a few scenarios only (`--tasks`, `--public-only`) to stay quick; what they check does
not depend on which scenarios run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
import zipfile
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.hosting import isolation
from harness.hosting.launcher import APP
from harness.submissions import grader
from harness.submissions.intake import Submission
from solutions import ROOT
from submissions import FEW, STARTER_FALLBACK_PASSES, faultfirst_grade, on_questions, starter_with

def graded(outcome: subprocess.CompletedProcess[str], report: Path) -> dict[str, typing.Any]:
    assert report.is_file(), f"no report:\n{outcome.stdout}\n{outcome.stderr}"
    data: dict[str, typing.Any] = json.loads(report.read_text())
    return data


def statuses(report: dict[str, typing.Any]) -> dict[str, str]:
    return {scenario["id"]: scenario["status"] for scenario in report["scenarios"]}


# -- tampering ------------------------------------------------------------------------------------

TAMPERING = {
    # a conftest that turns every failure into a pass, and one that drops failing scenarios
    "conftest.py": """
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            report.outcome = "passed"
            return report
    """,
    "scenarios/conftest.py": """
        def pytest_collection_modifyitems(items):
            items[:] = [item for item in items if "fall_back" in item.name]
    """,
    # scenarios rewritten to pass whatever the app does
    "scenarios/test_fallback.py": """
        import pytest

        @pytest.mark.scenario(task="fallback", points=50, title="free points", hint="none")
        def test_free_points():
            pass
    """,
    # configuration that switches the grader's plugin off, or points it elsewhere
    "pyproject.toml": """
        [project]
        name = "cheat"
        version = "1"
        dependencies = []

        [tool.pytest.ini_options]
        addopts = "-p no:faultfirst -p no:anyio --faultfirst-tasks streaming"
        faultfirst_tasks = "streaming"
    """,
    "pytest.ini": "[pytest]\naddopts = -p no:faultfirst\n",
    "harness/plugin.py": "raise SystemExit('the submission's harness must never be imported')\n",
}


def test_a_tampering_submission_gets_the_score_it_would_get_without_tampering(
    tmp_path: Path,
) -> None:
    plain = starter_with(tmp_path / "plain")
    tampered = starter_with(tmp_path / "tampered", files=TAMPERING)
    faultfirst_grade(plain, *FEW, "--json", tmp_path / "plain.json")
    faultfirst_grade(tampered, *FEW, "--json", tmp_path / "tampered.json")
    honest = json.loads((tmp_path / "plain.json").read_text())
    cheat = json.loads((tmp_path / "tampered.json").read_text())
    assert statuses(cheat) == statuses(honest)
    assert cheat["score"] == honest["score"]
    assert cheat["files"] == honest["files"]  # exercise_app/ alone was graded
    passed = {id for id, status in statuses(honest).items() if status == "passed"}
    assert passed == STARTER_FALLBACK_PASSES


# -- submissions that go wrong --------------------------------------------------------------------


def test_an_app_that_fails_to_import_is_ungradable_with_one_line_saying_why(
    tmp_path: Path,
) -> None:
    broken = starter_with(tmp_path / "broken", app_py="raise RuntimeError('no config here')")
    outcome = faultfirst_grade(broken, *FEW, "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "ungradable"
    assert set(statuses(report).values()) == {"app did not start"}
    reasons = {scenario["reason"] for scenario in report["scenarios"]}
    assert len(reasons) == 1 and "RuntimeError: no config here" in reasons.pop()
    assert "Traceback" not in outcome.stdout + outcome.stderr
    assert outcome.returncode == 3, "could not be graded, as grade --help says"
    assert outcome.stderr.count("RuntimeError: no config here") == 1, outcome.stderr
    assert outcome.stdout.count("RuntimeError: no config here") == 1, "the board says it once"


def test_a_missing_dependency_is_named_with_what_to_do(tmp_path: Path) -> None:
    needy = starter_with(tmp_path / "needy", app_py="import faultfirst_no_such_package")
    outcome = faultfirst_grade(needy, *FEW, "--json", tmp_path / "grade.json")
    reason = graded(outcome, tmp_path / "grade.json")["scenarios"][0]["reason"]
    assert "'faultfirst_no_such_package', which is not installed: pip install it" in reason
    assert "--install-deps" in reason
    assert outcome.returncode == 3


# What the submissions below declare: two packages nobody has, one this environment has at a
# version it excludes, and two it has as asked (for pytest, under another spelling of its name).
DECLARED = """
    [project]
    name = "needy"
    version = "1"
    dependencies = [
        "faultfirst-absent-one>=2",
        "httpx>=0.28",
        "PyTest>=1",
        "uvicorn<0.1",
        "faultfirst_absent_two; python_version >= '3'",
        "uvloop; sys_platform == 'nonesuch'",
    ]
"""
UNMET = ("faultfirst-absent-one>=2", "uvicorn<0.1", "faultfirst_absent_two; python_version >= '3'")


def warnings_of(outcome: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in outcome.stderr.splitlines() if "warning: needy declares" in line]


def test_packages_declared_and_lacking_are_named_once_all_of_them_before_grading(
    tmp_path: Path,
) -> None:
    """Declared but never imported: the app runs, the grade stands, and one line says what the
    grader's environment lacks and what to run."""
    needy = starter_with(tmp_path / "needy", files={"pyproject.toml": DECLARED})
    outcome = faultfirst_grade(needy, *FEW, "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "graded", outcome.stdout
    passed = {id for id, status in statuses(report).items() if status == "passed"}
    assert passed == STARTER_FALLBACK_PASSES
    assert outcome.returncode == 0, outcome.stderr
    [line] = warnings_of(outcome)
    assert line.startswith("faultfirst grade: warning: needy declares 3 packages this environment lacks: ")
    for declared in UNMET:
        assert declared in line
    assert "uvicorn<0.1 (" in line and " here)" in line, "the version installed is named"
    for met in ("httpx", "PyTest", "uvloop"):
        assert met not in line
    assert "grade it with --install-deps, or install them into the grader's environment (" in line
    assert f"{sys.executable} -m pip install 'faultfirst-absent-one>=2' 'uvicorn<0.1' " in line
    assert "faultfirst_absent_two" not in outcome.stdout, "the grading run does not repeat it"


def test_an_app_that_imports_a_package_it_declares_and_the_grader_lacks_is_one_line_and_exit_3(
    tmp_path: Path,
) -> None:
    needy = starter_with(
        tmp_path / "needy",
        app_py="import faultfirst_absent_two",
        files={"pyproject.toml": DECLARED},
    )
    outcome = faultfirst_grade(needy, *FEW, "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "ungradable"
    assert outcome.returncode == 3, "could not be graded, as grade --help says"
    assert len(warnings_of(outcome)) == 1, outcome.stderr
    [verdict] = [line for line in outcome.stderr.splitlines() if "was not graded" in line]
    assert verdict.startswith(
        "faultfirst grade: needy was not graded: its app imports 'faultfirst_absent_two', which "
        "is not installed, and needy declares 3 packages this environment lacks: "
    ), verdict
    assert "--install-deps" in verdict
    board = " ".join(outcome.stdout.split())  # as wrapped lines read
    assert board.count("'faultfirst_absent_two', which is not installed") == 1, (
        "the score board says it once, not once a scenario"
    )
    assert "Traceback" not in outcome.stdout + outcome.stderr


def test_install_deps_makes_a_virtualenv_only_for_what_is_lacking(tmp_path: Path) -> None:
    submission = Submission("met", tmp_path, tmp_path, "sha256:0", 1, ["httpx", "pytest"])
    options = grader.Options(install_deps=True)
    outcome = grader.Outcome("met", str(tmp_path), "not graded")
    said: list[str] = []
    assert grader._python_for(submission, tmp_path, options, outcome, said.append) == sys.executable
    assert not (tmp_path / "venv").exists() and not said


def test_packages_the_grader_has_are_graded_without_a_warning(tmp_path: Path) -> None:
    met = starter_with(
        tmp_path / "met", files={"requirements.txt": "httpx>=0.28\nstarlette\n# a comment\n"}
    )
    outcome = faultfirst_grade(met, *FEW, "--install-deps", "--json", tmp_path / "grade.json")
    assert graded(outcome, tmp_path / "grade.json")["status"] == "graded"
    assert outcome.returncode == 0, outcome.stderr
    assert "warning" not in outcome.stderr


def test_install_deps_installs_what_the_submission_declares_in_a_throwaway_virtualenv(
    tmp_path: Path,
) -> None:
    wheel = tiny_wheel(tmp_path / "wheels", "faultfirst_tinydep")
    needy = starter_with(
        tmp_path / "needy",
        app_py="import faultfirst_tinydep",
        files={"requirements.txt": f"faultfirst_tinydep @ {wheel.as_uri()}\n"},
    )
    outcome = faultfirst_grade(needy, *FEW, "--install-deps", "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "graded", outcome.stdout
    passed = {id for id, status in statuses(report).items() if status == "passed"}
    assert passed == STARTER_FALLBACK_PASSES
    assert not list(Path(sys.prefix).glob("lib/*/site-packages/faultfirst_tinydep*"))


def test_a_hanging_app_is_stopped_by_the_time_limits_and_keeps_its_results(
    tmp_path: Path,
) -> None:
    hanging = starter_with(tmp_path / "hanging", app_py=on_questions("await asyncio.sleep(3600)"))
    started = time.monotonic()
    limits = ["--scenario-timeout", "2", "--run-timeout", "7", "--concurrency", "1"]
    tasks = ["--tasks", "streaming,fallback", "--public-only"]  # more than 7 s of hanging
    outcome = faultfirst_grade(hanging, *tasks, *limits, "--json", tmp_path / "grade.json")
    took = time.monotonic() - started
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "incomplete"
    seen = statuses(report)
    assert "timed out" in seen.values() and "not run" in seen.values()
    assert set(seen.values()) <= {"timed out", "not run", "passed", "failed"}
    # 7 s of run, plus the grader's own start and stop; far under the 60 s a missed limit costs
    assert took < 45, f"grading took {took:.0f}s"
    assert any("the run's time limit of 7s" in s["reason"] for s in report["scenarios"])


def test_an_app_that_crashes_mid_scenario_is_graded_app_crashed_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    crashing = starter_with(tmp_path / "crashing", app_py=on_questions("os._exit(3)"))
    outcome = faultfirst_grade(crashing, *FEW, "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    crashed = [s for s in report["scenarios"] if s["status"] == "app crashed"]
    assert len(crashed) == len(report["scenarios"])  # each scenario got a fresh app, and lost it
    assert all("exited with code 3" in s["reason"] for s in crashed)
    assert report["status"] == "graded"


def test_an_app_that_starts_a_thousand_processes_is_stopped_at_the_limit(tmp_path: Path) -> None:
    spawner = starter_with(
        tmp_path / "spawner",
        app_py="""
            import subprocess

            _children = [subprocess.Popen(["sleep", "60"]) for _ in range(1000)]
        """,
    )
    started = time.monotonic()
    outcome = faultfirst_grade(spawner, *FEW, "--json", tmp_path / "grade.json")
    report = graded(outcome, tmp_path / "grade.json")
    assert report["status"] == "ungradable"
    assert "more processes than the limit of 32" in report["scenarios"][0]["reason"]
    assert time.monotonic() - started < 60
    leftover = subprocess.run(["pgrep", "-f", "^sleep 60$"], capture_output=True, text=True)
    assert leftover.stdout.split() == [], "the app's processes outlived the grade"


# -- archives, batches, exit status ---------------------------------------------------------------


def test_a_batch_grades_in_parallel_and_a_broken_submission_does_not_stop_it(
    tmp_path: Path,
) -> None:
    starter = starter_with(tmp_path / "alice")
    archive = tmp_path / "bob.zip"
    with zipfile.ZipFile(archive, "w") as bundle:  # GitHub's "Download ZIP" shape
        for file in sorted(starter.rglob("*")):
            bundle.write(file, Path("bob-main") / file.relative_to(starter))
    corrupt = tmp_path / "carol.zip"
    corrupt.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    checkout = git_checkout(starter_with(tmp_path / "dave", files={"harness/plugin.py": "sent"}))
    (checkout / "harness" / "plugin.py").write_text("changed: every scenario passes")
    tables = ["--csv", tmp_path / "table.csv", "--table-json", tmp_path / "table.json"]
    submissions = [starter, archive, corrupt, checkout]
    outcome = faultfirst_grade(*submissions, *FEW, "-j", "2", *tables, "--md", tmp_path / "md")
    assert outcome.returncode == 3, outcome.stderr  # carol could not be graded
    table = json.loads((tmp_path / "table.json").read_text())
    rows = {row["submission"]: row for row in table["submissions"]}
    assert rows["alice"]["status"] == rows["bob"]["status"] == rows["dave"]["status"] == "graded"
    assert rows["alice"]["earned"] == rows["bob"]["earned"] == rows["dave"]["earned"] > 0
    assert rows["alice"]["digest"] == rows["bob"]["digest"] == rows["dave"]["digest"]
    assert rows["carol"]["status"] == "not graded" and "zip" in rows["carol"]["reason"]
    csv_lines = (tmp_path / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("submission,fallback,earned,possible,percentage,status")
    assert len(csv_lines) == 5
    written = sorted(path.name for path in (tmp_path / "md").iterdir())
    assert written == ["alice.md", "bob.md", "dave.md"]
    for name in ("alice", "bob", "carol", "dave"):
        assert name in outcome.stdout  # the terminal table
    warnings = [line for line in outcome.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "faultfirst grade: warning: dave changed the grader it was sent (harness/plugin.py), so a "
        "CI score from its repository is not to be trusted; this grade used this installation's "
        "grader and stands"
    ]


def test_min_score_fails_the_exit_status_only_under_it(tmp_path: Path) -> None:
    starter = starter_with(tmp_path / "starter")  # passes some of the fallback's scenarios
    assert faultfirst_grade(starter, *FEW, "--min-score", "99").returncode == 1
    assert faultfirst_grade(starter, *FEW, "--min-score", "1").returncode == 0
    broken = starter_with(tmp_path / "broken", app_py="raise RuntimeError('boom')")
    assert faultfirst_grade(broken, *FEW, "--min-score", "0").returncode == 3, "never started"


def test_the_step_summary_gets_valid_markdown_appended(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# Earlier step\n\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    starter = starter_with(tmp_path / "starter")
    outcome = faultfirst_grade(
        starter, *FEW, "--md", summary, "--junitxml", tmp_path / "j.xml", env=env
    )
    assert outcome.returncode == 0, outcome.stderr
    text = summary.read_text()
    assert text.startswith("# Earlier step\n\n## faultfirst: ")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables = [token for token in tokens if token.type == "table_open"]
    assert len(tables) == 2  # the task table and the table of what to fix
    headings = [t.content for t, n in zip(tokens, tokens[1:]) if t.type == "inline"]
    assert any(h.startswith("What to fix") for h in headings)
    assert (tmp_path / "j.xml").read_text().startswith("<?xml")


def test_usage_errors_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    outcome = faultfirst_grade(tmp_path, "--tasks", "nonsense")
    assert outcome.returncode == 2
    assert outcome.stderr.strip().splitlines() == [
        "faultfirst grade: unknown task nonsense; choose from streaming, cancellation, retries, "
        "fallback, metadata, timeouts, jobs, structured, or all"
    ]
    missing = faultfirst_grade(tmp_path / "nowhere", *FEW)
    assert missing.returncode == 3
    assert "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def git_checkout(folder: Path) -> Path:
    """`folder` made a candidate's git repository: everything committed as the bundle is."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(folder)]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "faultfirst exercise"]):
        subprocess.run([*git, *command], check=True, capture_output=True, timeout=30)
    return folder


def tiny_wheel(folder: Path, name: str) -> Path:
    """A pure-Python wheel of an empty package `name`, built by hand: pip installs it with no
    network and no build backend."""
    folder.mkdir(parents=True)
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def foreground_job() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("submissions", [1, 3])
def test_ctrl_c_stops_the_grade_and_every_process_it_started(
    tmp_path: Path, submissions: int
) -> None:
    """One grade, or a batch of three two at a time (the third is never started)."""
    hanging = [
        starter_with(tmp_path / f"hanging-{n}", app_py=on_questions("await asyncio.sleep(3600)"))
        for n in range(submissions)
    ]
    command = [sys.executable, "-m", "harness.cli", "grade", *map(str, hanging), *FEW, "-j", "2"]
    # As a shell starts a job in the foreground: Ctrl-C's default, whatever this worker inherited
    # (a SIGINT ignored here would be ignored by the grade too, as in a background job). In one
    # whole-suite run both cases ran the grade to its end; alone they pass: see the note.
    grading = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=foreground_job,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not apps_below(grading.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert apps_below(grading.pid), "no app was started"
        started = isolation.descendants(grading.pid)  # grading runs, lanes, templates, apps
        grading.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, errors = grading.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        grading.kill()
    assert grading.returncode == 130
    # A tenth of a second to notice, a SIGKILL and its wait: well under a second on an idle
    # machine; 10 s allows for a loaded one, and is far from a wait with no end.
    assert took < 10, f"Ctrl-C took {took:.1f}s to stop the grade"
    assert errors.strip().splitlines() == ["faultfirst grade: interrupted; no report was written"]
    deadline = time.monotonic() + 5  # the apps die with the grading child: at once, not at exit
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(started) == []


def apps_below(pid: int) -> list[int]:
    """The apps a grade started: forked by its templates, or started the exec'd way."""
    below = isolation.descendants(pid)
    templates = [child for child in below if b"harness.hosting.template" in cmdline(child)]
    forked = [app for template in templates for app in isolation.descendants(template)]
    return forked + [child for child in below if os.fsencode(APP) in cmdline(child)]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie has ended; it is only not reaped yet)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


def test_install_deps_installs_wheels_only(tmp_path: Path) -> None:
    """Building a package from source runs its code, and pip runs as the grader, unboxed."""
    ran = tmp_path / "ran"
    source = tmp_path / "sdist" / "faultfirst_sdist-1.0"
    source.mkdir(parents=True)
    (source / "setup.py").write_text(f"open({str(ran)!r}, 'w').write('ran')\n")
    archive = shutil.make_archive(str(source), "gztar", source.parent, source.name)
    needy = starter_with(
        tmp_path / "needy",
        files={"requirements.txt": f"faultfirst_sdist @ {Path(archive).as_uri()}\n"},
    )
    outcome = faultfirst_grade(needy, *FEW, "--install-deps")
    assert outcome.returncode == 3
    assert "points at something pip would build: the grader installs wheels only" in outcome.stderr
    assert not ran.exists()


def test_grading_runs_keep_their_bytecode_wherever_the_grader_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grading run compiles the harness and rewrites the scenarios' asserts unless it finds
    them cached: seconds of CPU per grade. CI images often set PYTHONDONTWRITEBYTECODE, and an
    installation may belong to another user."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in grader._environment()
    assert "PYTHONPYCACHEPREFIX" not in grader._environment()  # ours is writable: kept beside it
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    cache = tmp_path / "faultfirst" / "pycache"
    assert grader._environment()["PYTHONPYCACHEPREFIX"] == str(cache)

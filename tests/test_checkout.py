"""`harness.submissions.checkout`: what a candidate's checkout changed of the grader it was sent
with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.submissions.checkout import protected_changes

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(folder: Path, *arguments: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", *identity, *arguments], cwd=folder, check=True, capture_output=True)


def sent(folder: Path) -> Path:
    """A repository as a bundle is sent: the grader, the app, the workflow, one commit."""
    for path, text in {
        "harness/plugin.py": "plugin",
        "harness/__init__.py": "",
        "scenarios/test_retries.py": "scenarios",
        ".github/workflows/faultfirst.yml": "workflow",
        "exercise_app/app.py": "app",
    }.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "faultfirst exercise")
    return folder


def test_work_on_the_app_alone_changes_nothing_protected(tmp_path: Path) -> None:
    folder = sent(tmp_path)
    (folder / "exercise_app" / "app.py").write_text("solved")
    (folder / "exercise_app" / "retry.py").write_text("new")
    (folder / "harness" / "__pycache__").mkdir()
    (folder / "harness" / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\0")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "my solution")
    assert protected_changes(folder) == []


def test_changes_to_the_grader_are_found_committed_or_not(tmp_path: Path) -> None:
    folder = sent(tmp_path)
    (folder / "harness" / "plugin.py").write_text("every scenario passes")
    git(folder, "commit", "-qam", "better grader")
    (folder / "scenarios" / "test_retries.py").unlink()  # not committed
    (folder / ".github" / "workflows" / "mine.yml").write_text("new")
    assert protected_changes(folder) == [
        ".github/workflows/mine.yml",
        "harness/plugin.py",
        "scenarios/test_retries.py",
    ]


def test_the_repository_s_own_configuration_runs_nothing(tmp_path: Path) -> None:
    folder = sent(tmp_path)
    ran = tmp_path / "ran"
    git(folder, "config", "core.fsmonitor", f"touch {ran}; false")
    (folder / "harness" / "plugin.py").write_text("changed")
    assert protected_changes(folder) == ["harness/plugin.py"]
    assert not ran.exists()


def test_a_folder_that_is_no_checkout_has_nothing_to_say(tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "plugin.py").write_text("anything")
    assert protected_changes(tmp_path) == []


def test_a_repository_that_did_not_start_as_a_bundle_has_nothing_to_say(tmp_path: Path) -> None:
    folder = sent(tmp_path)
    git(folder, "commit", "-q", "--amend", "-m", "my own project")
    (folder / "harness" / "plugin.py").write_text("changed")
    assert protected_changes(folder) == []

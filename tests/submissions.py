"""Submissions made for tests: the starter with something added, and `faultfirst grade` run on
them as an interviewer runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from solutions import ROOT, STARTER

FEW = ["--tasks", "fallback", "--public-only"]  # 3 quick scenarios
STARTER_FALLBACK_PASSES = {"rejected_requests_do_not_fall_back"}


def faultfirst_grade(
    *arguments: str | Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli", "grade", *map(str, arguments)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def starter_with(folder: Path, *, app_py: str = "", files: dict[str, str] | None = None) -> Path:
    """A copy of the starter in `folder`, with `app_py` appended to exercise_app/app.py and
    `files` (paths relative to `folder`) written."""
    shutil.copytree(STARTER, folder / "exercise_app", ignore=shutil.ignore_patterns("__pycache__"))
    if app_py:
        with (folder / "exercise_app" / "app.py").open("a") as app:
            app.write("\n" + textwrap.dedent(app_py))
    for path, text in (files or {}).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(textwrap.dedent(text))
    return folder


def on_questions(statement: str) -> str:
    """Code to append to the starter's app.py: it runs `statement` first on every request to
    ``/api/`` (``asyncio`` and ``os`` imported), and then, if it returns, the starter."""
    return f"""
        import asyncio
        import os

        _starter = app

        async def app(scope, receive, send):
            if scope["type"] == "http" and scope["path"].startswith("/api/"):
                {statement}
            await _starter(scope, receive, send)
    """

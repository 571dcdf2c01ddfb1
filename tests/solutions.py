"""Solutions to the exercise, built as the starter app with overlays copied over it.

The reference solution (``tests/reference/``) is an overlay: a folder holding an
``exercise_app/`` with only the files that differ from the starter, so a change to the starter
reaches it. The flawed solutions (``mutants/``) are small text edits to the built reference, each
reading as the diff that breaks it. Both live under ``tests/``, which candidates never receive.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mutants import Mutant

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "exercise_app"
REFERENCE = Path(__file__).resolve().parent / "reference"
PACKAGE = "exercise_app"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def build_solution(destination: Path, *overlays: Path) -> Path:
    """Copy the starter into ``destination/exercise_app``, then each overlay's files over it, in
    order (a mutant goes after the reference it changes). Returns `destination`, a folder
    `harness.hosting.launcher.AppProcess` can run."""
    for overlay in overlays:
        if not (overlay / PACKAGE).is_dir():
            raise ValueError(f"overlay {overlay} has no {PACKAGE}/ folder")
    shutil.copytree(STARTER, destination / PACKAGE, ignore=_IGNORED)
    for overlay in overlays:
        shutil.copytree(
            overlay / PACKAGE, destination / PACKAGE, ignore=_IGNORED, dirs_exist_ok=True
        )
    return destination


def build_mutant(destination: Path, mutant: Mutant) -> Path:
    """Build the reference into ``destination/exercise_app``, then apply `mutant`'s edits in
    order. Returns `destination`, a folder `harness.hosting.launcher.AppProcess` can run.

    An edit whose text to replace is not in its file exactly once raises `ValueError`: the
    reference has drifted from the mutant, which would otherwise build a wrong (or correct) app.
    """
    build_solution(destination, REFERENCE)
    for edit in mutant.edits:
        file = destination / PACKAGE / edit.path
        if not file.is_file():
            raise ValueError(f"mutant {mutant.name!r}: the reference has no {PACKAGE}/{edit.path}")
        text = file.read_text(encoding="utf-8")
        found = text.count(edit.old)
        if found != 1:
            raise ValueError(
                f"mutant {mutant.name!r}: {PACKAGE}/{edit.path} holds the text to replace "
                f"{found} times, not once; has the reference changed? The text: {edit.old!r}"
            )
        file.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
    return destination

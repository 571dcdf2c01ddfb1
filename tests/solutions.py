"""Solutions to the exercise, built as the starter app with overlays copied over it.

The reference solution (``tests/reference/``) and the flawed solutions are overlays: folders
holding an ``exercise_app/`` with only the files that differ from the starter. A change to the
starter reaches every solution, and a flawed solution reads as the small diff that breaks it.
Overlays live under ``tests/``, which candidates never receive.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "exercise_app"
REFERENCE = Path(__file__).resolve().parent / "reference"
PACKAGE = "exercise_app"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def build_solution(destination: Path, *overlays: Path) -> Path:
    """Copy the starter into ``destination/exercise_app``, then each overlay's files over it, in
    order (a mutant goes after the reference it changes). Returns `destination`, a folder
    `harness.launcher.AppProcess` can run."""
    for overlay in overlays:
        if not (overlay / PACKAGE).is_dir():
            raise ValueError(f"overlay {overlay} has no {PACKAGE}/ folder")
    shutil.copytree(STARTER, destination / PACKAGE, ignore=_IGNORED)
    for overlay in overlays:
        shutil.copytree(
            overlay / PACKAGE, destination / PACKAGE, ignore=_IGNORED, dirs_exist_ok=True
        )
    return destination

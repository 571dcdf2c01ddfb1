"""What a mutant is: a few exact text replacements in the built reference solution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str  # relative to exercise_app/, e.g. "retry.py"
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str  # a snake_case id
    description: str  # the mistake, in one line
    edits: tuple[Edit, ...]
    # The ids of the brief's requirements it breaks (harness/grading/requirements.toml).
    breaks: tuple[str, ...] = ()
    # The scenario ids this mutant must fail (and so the scenarios that catch it).
    expected_failures: frozenset[str] = frozenset()
    # The tasks whose scenarios its flaw can reach, when its edits touch only code behind those
    # tasks' endpoints (say, jobs.py): the calibration grades it on these alone. None: every task.
    reaches: tuple[str, ...] | None = None
    # Written from the brief's sentence before looking at the scenarios that should catch it, as
    # a hurried candidate would get it wrong; the older ones were written beside the scenarios.
    from_brief: bool = False
    # Why no scenario catches it, for a mistake the scenarios cannot see within their budget of
    # time or without flaking: a known blind spot, shown in docs/coverage.md. Such a mutant
    # expects no failure, and the calibration proves it scores full marks.
    uncaught: str = ""

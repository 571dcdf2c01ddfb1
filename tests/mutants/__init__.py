"""Flawed solutions ("mutants"): the reference solution with one realistic mistake each.

A mutant is a few exact text replacements in the built reference (`solutions.build_mutant`), so
each one reads as the small diff a candidate could have written. The reference stays correct in
every other respect, which lets a scenario show that it fails on exactly the defect it targets.

An edit's `old` text must occur exactly once in its file when the edit is applied (edits apply in
order): when the reference changes under a mutant, building the mutant fails loudly instead of
quietly producing a correct app.

Each task's mutants live in a module named after it (`across` for what every task asks: the error
shape, a responsive app, the settings); `MUTANTS` is all of them, in task order. Each names the
requirements of the brief it breaks (`Mutant.breaks`).
"""

from __future__ import annotations

from . import (
    across,
    cancellation,
    fallback,
    jobs,
    metadata,
    retries,
    streaming,
    structured,
    timeouts,
)
from .edits import Edit, Mutant

MUTANTS: list[Mutant] = [
    *across.MUTANTS,
    *streaming.MUTANTS,
    *cancellation.MUTANTS,
    *retries.MUTANTS,
    *fallback.MUTANTS,
    *metadata.MUTANTS,
    *timeouts.MUTANTS,
    *jobs.MUTANTS,
    *structured.MUTANTS,
]

__all__ = ["MUTANTS", "Edit", "Mutant"]

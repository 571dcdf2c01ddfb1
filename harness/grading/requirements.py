"""The requirements of the candidate's brief, numbered (``requirements.toml`` beside this module).

A scenario names the requirements it checks (``checks=`` in its mark), so that a requirement no
scenario checks shows, and so that a report can say which sentence of the brief a failure is
about. The table is data, not code: ``tests/test_requirements.py`` holds it against the brief's
text, the scenarios and the flawed solutions, and ``docs/coverage.md`` is made from it.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("requirements.toml")


@dataclass(frozen=True)
class Requirement:
    id: str  # ``area.name``: stable, scenarios and flawed solutions refer to it
    says: str  # the requirement, as one checkable sentence
    brief: str  # the brief's words it comes from, verbatim
    where: tuple[str, ...] = ()  # the endpoints it applies to, when more than one

    @property
    def area(self) -> str:
        """The task it belongs to, or what it spans (``errors``, ``app``, ``settings``)."""
        return self.id.split(".")[0]


@dataclass(frozen=True)
class Context:
    """Words of the brief that ask for nothing by themselves, and why."""

    brief: str
    why: str


@functools.cache
def requirements() -> dict[str, Requirement]:
    """Every requirement, by id, in the table's order."""
    table = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    listed = [
        Requirement(
            id=row["id"], says=row["says"], brief=row["brief"], where=tuple(row.get("where", ()))
        )
        for row in table["requirement"]
    ]
    return {requirement.id: requirement for requirement in listed}


@functools.cache
def context() -> tuple[Context, ...]:
    table = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    return tuple(Context(row["brief"], row["why"]) for row in table.get("context", ()))

"""The grader's dependencies pinned at the versions installed here, for grading elsewhere.

A grade depends on pytest, anyio, httpx, uvicorn and starlette as well as on our own code: a
Gradescope image or a CI job built next month would otherwise pick newer releases, and grade
with a grader nobody ran. So what we send out carries a ``requirements.txt`` of ``name==version``
lines: our dependencies and theirs, as this installation has them. A package needed only on
another platform or Python stays unpinned there, and pip resolves it as usual.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
import typing
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = (
    "# faultfirst's dependencies as the installation that wrote this file has them, so that\n"
    "# grades elsewhere run on the same releases. Written by faultfirst; regenerate, do not edit.\n"
)


class PinError(Exception):
    """A dependency is not installed here, so it cannot be pinned; one line for people."""


def pinned_requirements(pyproject: Path) -> list[str]:
    """``name==version`` for each dependency of the project in `pyproject`, and theirs,
    transitively, sorted by name."""
    project = tomllib.loads(pyproject.read_text())["project"]
    versions: dict[str, str] = {}
    waiting = list(project.get("dependencies", []))
    while waiting:
        requirement = Requirement(waiting.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in versions:
            continue
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise PinError(
                f"{requirement.name} is not installed here: install faultfirst first "
                "(pip install -e . in its folder)"
            ) from None
        waiting += _requires(name)
    return [f"{name}=={version}" for name, version in sorted(versions.items())]


def requirements_text(pyproject: Path) -> str:
    """`pinned_requirements` as the text of a ``requirements.txt``."""
    return HEADER + "".join(f"{line}\n" for line in pinned_requirements(pyproject))


def _requires(name: str) -> typing.Iterable[str]:
    return importlib.metadata.requires(name) or []

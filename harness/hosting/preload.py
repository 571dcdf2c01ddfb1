"""Which of a submission's packages its apps' template may import ahead of them.

A submission built on the openai SDK spends over a second of CPU importing it, in every app, and a
grade starts an app per scenario. The template (`template`) can import such a package once, so
that every app forked from it finds the package loaded, as it finds uvicorn. What it imports is
the grader's own installed copy, never anything of the submission's; and a forked app is still
the app a fresh process would be only where the package's import does not depend on what differs
between the two: the app's environment (its settings, its HOME), its folder at the head of
`sys.path`, and threads, which a fork does not copy. So the template does it for the packages of
`SHARED` alone, each checked for that by `tests/test_preload.py`, which records what their import
reads of the environment; and only for a submission that ships no module named as one of theirs,
or as a module they require, or a standard one: a fresh app would import the submission's in its
place.
"""

from __future__ import annotations

import ast
import collections
import importlib.metadata
import importlib.util
import itertools
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .launcher import APP

# A package a submission may import -> the module the template imports for it (pydantic loads its
# models lazily, at the app's first ``from pydantic import BaseModel``). Add one only with its check
# in test_preload.
SHARED = {"openai": "openai", "pydantic": "pydantic.main", "jsonschema": "jsonschema"}
MOST_FILES = 500  # Python files read for imports: past that, nothing is imported ahead
MOST_BYTES = 2_000_000  # their total size: an honest app's code is a few dozen kB


def shared_imports(submission: Path) -> tuple[str, ...]:
    """What to import ahead for the packages of `SHARED` that the code in `submission` imports
    (read with `ast`, never run) and that this Python has; nothing if the submission ships a
    module that a fresh app would import instead of theirs."""
    imported = _imported_names(submission)
    wanted = tuple(name for name in SHARED if name in imported and _installed(name))
    if not wanted or _shadows(submission, _modules_required_by(wanted)):
        return ()
    return tuple(SHARED[name] for name in wanted)


def _imported_names(submission: Path) -> set[str]:
    """The top-level names of every absolute import in the app's package, and in the Python files
    beside it; none for a submission with more code than `MOST_FILES` and `MOST_BYTES` allow,
    which parsing would make the grader pay for in time and memory."""
    package = submission / APP.partition(".")[0]
    found = itertools.chain(package.rglob("*.py"), submission.glob("*.py"))
    files = list(itertools.islice(found, MOST_FILES + 1))
    sizes = {path: size for path in files if (size := _own_size(path, submission)) is not None}
    names: set[str] = set()
    if len(files) > MOST_FILES or sum(sizes.values()) > MOST_BYTES:
        return names
    for path in sizes:
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # the app meets that file itself
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def _own_size(path: Path, submission: Path) -> int | None:
    """The size of a file of the submission's own code; None for a link, or a file in a hidden
    folder or a virtualenv."""
    parts = path.relative_to(submission).parts
    if any(part.startswith(".") or part in ("venv", "__pycache__") for part in parts[:-1]):
        return None
    try:
        return None if path.is_symlink() else path.stat().st_size
    except OSError:
        return None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _modules_required_by(names: tuple[str, ...]) -> set[str]:
    """The top-level modules of the distributions that provide `names`, and of every one they
    require (extras aside), read from their metadata: what importing `names` may import."""
    providers = importlib.metadata.packages_distributions()
    modules: dict[str, set[str]] = collections.defaultdict(set)
    for module, distributions in providers.items():
        for distribution in distributions:
            modules[canonicalize_name(distribution)].add(module)
    waiting = [canonicalize_name(d) for name in names for d in providers.get(name, [])]
    seen: set[str] = set()
    while waiting:
        distribution = waiting.pop()
        if distribution in seen:
            continue
        seen.add(distribution)
        try:
            requirements = importlib.metadata.requires(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requirements:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                waiting.append(canonicalize_name(requirement.name))
    return {module for distribution in seen for module in modules[distribution]}


def _shadows(submission: Path, modules: set[str]) -> bool:
    """Whether the submission's folder, first on a fresh app's `sys.path`, holds a module or
    package named as one of `modules` or a standard one."""
    own = {path.stem if path.suffix == ".py" else path.name for path in submission.iterdir()}
    return bool(own & (modules | set(sys.stdlib_module_names)))

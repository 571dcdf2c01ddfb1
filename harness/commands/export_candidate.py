"""Export the repository a candidate receives: the starter, the harness, the public scenarios.

What goes in is an allow-list, not our tree minus a deny-list: anything we add to the project later
(notes, benchmarks, solutions) stays out of the bundle unless someone decides it belongs there.
The candidate's ``pyproject.toml`` is generated from ours, so the two cannot drift apart: a project
of their own, declaring what their app needs, and carrying the grader with its needs as an extra.
A bundle is known by what it lacks, ``scenarios/hidden/`` (`grader.is_candidate_bundle`).

An interviewer picks the candidate's tasks (``--tasks``): the bundle's ``pytest`` (its
``faultfirst_tasks`` setting) and its CI workflow grade those, so the candidate's score board shows
the tasks of their brief and no others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import harness

from .. import vocabulary
from ..grading.tasks import CORE_TASKS, name_tasks, parse_tasks
from ..submissions import checkout, grader

PROJECT_ROOT = Path(harness.__file__).resolve().parents[1]

# Folders copied whole (junk aside), and the one sub-folder that never leaves us.
PACKAGES = ("exercise_app", "harness", "scenarios")
KEPT_BACK = Path("scenarios", "hidden")
WORKFLOW = Path(".github", "workflows", "faultfirst.yml")
# Files of the bundle that are not ours as they are: where each comes from in our tree.
FILES = {
    Path("README.md"): Path("candidate", "README.md"),
    Path(".gitignore"): Path(".gitignore"),
    WORKFLOW: Path("candidate") / WORKFLOW,
}
# What tools leave behind in a working tree; never ours to send.
JUNK = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".DS_Store"}
JUNK_SUFFIXES = (".pyc", ".pyo", ".egg-info")

COMMIT_MESSAGE = checkout.COMMIT_MESSAGE
# The candidate's project: theirs by name, declaring what their app needs (the starter's needs,
# with our versions: what exercise_app/ imports, and uvicorn, which serves it), and carrying the
# grader, whose own needs are an extra.
CANDIDATE_PROJECT = "research-assistant"
CANDIDATE_DESCRIPTION = (
    "A research assistant that answers questions with a language model: a faultfirst exercise."
)
APP_NEEDS = ("httpx", "starlette", "uvicorn")
GRADER_EXTRA = "grader"
# The workflow's line naming the tasks it grades, which the export rewrites to the chosen ones.
WORKFLOW_TASKS = "TASKS: {}  # the tasks in your brief"
OUR_EXTRAS = {"test"}  # extras for our own test suite, useless to a candidate


class ExportError(Exception):
    """The bundle could not be exported; the message is one line for people."""


def export_candidate(
    destination: Path,
    *,
    source: Path = PROJECT_ROOT,
    git: bool = True,
    tasks: typing.Sequence[str] = CORE_TASKS,
) -> list[Path]:
    """Write the candidate's repository into `destination` (missing or empty), and return the
    files written, relative to it. Its ``pytest`` and CI workflow grade `tasks`.

    With `git` and git installed, the bundle becomes a repository with one commit, so that what
    the candidate changed is a plain ``git diff`` away."""
    source = source.resolve()
    destination = destination.resolve()
    _check_source(source)
    _check_destination(destination, source)
    ours = tomllib.loads((source / "pyproject.toml").read_text())
    pyproject = candidate_pyproject(ours, tasks)
    workflow = candidate_workflow((source / FILES[WORKFLOW]).read_text(), tasks)

    destination.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for package in PACKAGES:
        for path in _package_files(source, Path(package)):
            written.append(_copy(source / path, destination, path))
    for target, origin in FILES.items():
        if target != WORKFLOW:
            written.append(_copy(source / origin, destination, target))
    for target, text in ((Path("pyproject.toml"), pyproject), (WORKFLOW, workflow)):
        (destination / target).parent.mkdir(parents=True, exist_ok=True)
        (destination / target).write_text(text)
        written.append(target)

    if git and shutil.which("git"):
        _commit(destination)
    return sorted(written, key=lambda path: path.as_posix())


def candidate_pyproject(
    ours: dict[str, typing.Any], tasks: typing.Sequence[str] = CORE_TASKS
) -> str:
    """Our ``pyproject.toml`` (parsed) as the candidate's: a project of their own name whose
    dependencies are what their app needs (`APP_NEEDS`, as we pin them), with the grader, its
    entry points, and its own dependencies as the ``grader`` extra; without our test extra, and
    pytest pointed at the scenarios of `tasks`."""
    project = dict(ours["project"])
    project["name"] = CANDIDATE_PROJECT
    project["description"] = CANDIDATE_DESCRIPTION
    project["readme"] = "README.md"
    grader_needs = list(project.get("dependencies", []))
    project["dependencies"] = _app_needs(grader_needs)
    extras = project.pop("optional-dependencies", {})
    extras = {name: needs for name, needs in extras.items() if name not in OUR_EXTRAS}
    project["optional-dependencies"] = {**extras, GRADER_EXTRA: grader_needs}
    tables: dict[str, typing.Any] = {"build-system": ours["build-system"], "project": project}
    tool: dict[str, typing.Any] = {}
    if "setuptools" in ours.get("tool", {}):
        tool["setuptools"] = ours["tool"]["setuptools"]
    tool["pytest"] = {
        "ini_options": {
            "testpaths": ["scenarios"],
            vocabulary.ini_key("tasks"): ",".join(tasks),
        }
    }
    tables["tool"] = tool
    header = (
        "# Your project. Declare under dependencies any library your app needs: graders install\n"
        "# them (faultfirst grade --install-deps). The grader that came with it installs with its\n"
        f"# own dependencies, the {GRADER_EXTRA!r} extra: pip install -e '.[{GRADER_EXTRA}]'\n\n"
    )
    return header + _toml(tables)


def _app_needs(dependencies: list[str]) -> list[str]:
    """Those of `dependencies` (ours) that the starter app needs, `APP_NEEDS`."""
    needs = [text for text in dependencies if _name(text) in APP_NEEDS]
    if sorted(map(_name, needs)) != sorted(APP_NEEDS):
        raise ExportError(
            f"our pyproject.toml does not declare each of {', '.join(APP_NEEDS)} once, which the "
            "starter app needs"
        )
    return needs


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def candidate_workflow(ours: str, tasks: typing.Sequence[str] = CORE_TASKS) -> str:
    """Our CI workflow, grading `tasks`."""
    try:
        return name_tasks(ours, WORKFLOW_TASKS, tasks)
    except ValueError as error:
        raise ExportError(str(error)) from None


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``faultfirst export-candidate DIR`` to the ``faultfirst`` command's subcommands; not
    in a bundle, which has nothing to export (`grader.is_candidate_bundle`)."""
    if grader.is_candidate_bundle():
        return
    command = commands.add_parser(
        "export-candidate",
        help="write the repository to send a candidate (no hidden scenarios)",
        description="Write the repository a candidate receives into DIR: the starter app and its "
        "brief, the harness, the public scenarios, a README, a pyproject.toml and a CI workflow, "
        "committed once with git so that their changes show as a diff. Hidden scenarios and "
        "everything else of ours stay out.",
    )
    command.add_argument(
        "dir", type=Path, metavar="DIR", help="where to write it: a missing or empty folder"
    )
    command.add_argument(
        "--tasks",
        default=",".join(CORE_TASKS),
        metavar="LIST",
        help="the candidate's tasks, comma-separated, or 'all': what their pytest and CI grade "
        f"(default: {','.join(CORE_TASKS)})",
    )
    command.add_argument("--no-git", action="store_true", help="do not make it a git repository")
    command.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    destination: Path = args.dir
    try:
        tasks = parse_tasks(args.tasks)
        written = export_candidate(destination, git=not args.no_git, tasks=tasks)
    except (ExportError, ValueError) as error:
        print(f"faultfirst export-candidate: {error}", file=sys.stderr)
        return 2
    committed = (destination / ".git").is_dir()
    how = f', committed as "{COMMIT_MESSAGE}"' if committed else ""
    print(f"Wrote the candidate's repository to {destination}: {len(written)} files{how}.")
    for package in PACKAGES:
        count = sum(1 for path in written if path.parts[0] == package)
        note = " (public only)" if package == KEPT_BACK.parts[0] else ""
        print(f"  {package + '/':<16}{count:>4} files{note}")
    others = [path.as_posix() for path in written if path.parts[0] not in PACKAGES]
    print(f"  and {', '.join(others)}")
    print(f"Its pytest and CI grade these tasks: {', '.join(tasks)}.")
    print(f"Next: try it as the candidate will (pip install -e '.[{GRADER_EXTRA}]' in a fresh")
    print("virtualenv, then pytest scenarios), send it (an archive, or push it to a new private")
    print("repository), and grade what comes back from this installation: faultfirst grade")
    print("SUBMISSION.")
    return 0


def _check_source(source: Path) -> None:
    needed = [Path(package) for package in PACKAGES] + [Path("pyproject.toml"), *FILES.values()]
    missing = [path.as_posix() for path in needed if not (source / path).exists()]
    if missing:
        raise ExportError(
            f"{source} is not a faultfirst source tree (no {', '.join(missing)}): export from a "
            "checkout of the faultfirst repository, not from an installed copy"
        )


def _check_destination(destination: Path, source: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise ExportError(f"{destination} exists and is not a folder")
    if destination.is_dir() and any(destination.iterdir()):
        raise ExportError(f"{destination} is not empty: give a new or empty folder")
    for package in PACKAGES:
        if destination.is_relative_to(source / package):
            raise ExportError(f"{destination} is inside {package}/, which it would be copied from")


def _package_files(source: Path, package: Path) -> list[Path]:
    """Files under `package`, relative to `source`, without junk and without what we keep back."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(source / package):
        here = Path(folder).relative_to(source)
        dirs[:] = sorted(name for name in dirs if not _junk(name) and here / name != KEPT_BACK)
        found += [here / name for name in sorted(files) if not _junk(name)]
    return found


def _junk(name: str) -> bool:
    return name in JUNK or name.endswith(JUNK_SUFFIXES)


def _copy(origin: Path, destination: Path, target: Path) -> Path:
    (destination / target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(origin, destination / target)
    return target


def _commit(folder: Path) -> None:
    """``git init`` and one commit, with a fixed author and none of the user's hooks or signing,
    which would make the export fail or wait on a prompt."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    config = [
        "-c", "user.name=faultfirst", "-c", "user.email=faultfirst@localhost",
        "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
    ]  # fmt: skip
    steps = (
        ["init", "--quiet"],
        ["add", "--all"],
        ["commit", "--quiet", "--no-verify", "-m", COMMIT_MESSAGE],
    )
    for step in steps:
        try:
            subprocess.run(
                ["git", *config, *step], cwd=folder, env=environ, capture_output=True, text=True,
                check=True, timeout=60,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
            said = getattr(error, "stderr", None) or str(error)
            last = said.strip().splitlines()[-1] if said.strip() else str(error)
            raise ExportError(
                f"the files are in {folder}, but 'git {step[0]}' failed ({last}); "
                "commit them yourself, or export again with --no-git"
            ) from None


# -- a TOML writer for what a pyproject holds: tables, strings, numbers, booleans, arrays ---------


def _toml(tables: dict[str, typing.Any]) -> str:
    lines: list[str] = []
    _toml_table(tables, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_table(table: dict[str, typing.Any], name: list[str], lines: list[str]) -> None:
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if values:
        if name:
            lines += ["", f"[{'.'.join(_toml_key(part) for part in name)}]"]
        lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in values.items()]
    for key, value in table.items():
        if isinstance(value, dict):
            _toml_table(value, [*name, key], lines)


def _toml_key(key: str) -> str:
    bare = bool(key) and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are all valid in TOML
    if isinstance(value, list):
        if len(value) > 2:
            return "[\n" + "".join(f"    {_toml_value(item)},\n" for item in value) + "]"
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):  # only inside an array (say, authors): tables get headers
        pairs = (f"{_toml_key(key)} = {_toml_value(item)}" for key, item in value.items())
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(f"no TOML for {value!r}")

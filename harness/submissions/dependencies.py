"""What a submission declares it needs: whether the grader's environment has it, and, with
``--install-deps``, a throwaway virtualenv that does, for its app to run on.

A submission's list is compared with the environment before it is graded, so that what is missing
is said once, all of it, with what to run, rather than found one module at a time by an app that
fails to import in every scenario.

The virtualenv sees the grader's own packages (a ``.pth`` file adds the grader's site folders,
editable installs included), so pip installs only what is missing: a submission that declares
faultfirst's dependencies plus ``tenacity`` costs one small download, not a whole environment.

Wheels only: building a package from source runs its code (``setup.py``, a build backend), and
pip runs here as the grader, outside any box. Installing a wheel runs nothing; what it holds
runs only in the app, boxed.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import site
import subprocess
import sys
import sysconfig
import urllib.parse
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

INSTALL_TIMEOUT = 600.0  # seconds: a slow mirror, a package built from source


class InstallError(RuntimeError):
    """The submission's dependencies could not be installed; one line for people."""


def missing(requirements: list[str]) -> list[str]:
    """Those of `requirements` (as a submission declares them) that the grader's own environment
    does not meet: not installed, or installed at a version they exclude. One whose markers
    leave this Python out is met; one that is not a requirement pip understands is not."""
    installed = _installed()
    unmet = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            unmet.append(text)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = installed.get(canonicalize_name(requirement.name))
        if version is None or not _allows(requirement, version):
            unmet.append(text)
    return unmet


def declares(requirements: list[str], module: str) -> bool:
    """Whether one of `requirements` is a package named as `module` is (``tenacity`` for
    ``tenacity``): most are, though not all (``pyyaml`` is imported as ``yaml``)."""
    names = set()
    for text in requirements:
        try:
            names.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    return canonicalize_name(module) in names


def advice(name: str, unmet: list[str]) -> str:
    """The one line that says what submission `name` declares and this environment lacks, and
    what to run about it."""
    command = shlex.join([sys.executable, "-m", "pip", "install", *unmet])
    installed = _installed()
    shown = ", ".join(_with_version(text, installed) for text in unmet)
    return (
        f"{name} declares {_count(unmet)} this environment lacks: {shown}; grade it "
        f"with --install-deps, or install {'it' if len(unmet) == 1 else 'them'} into the grader's "
        f"environment ({command})"
    )


def _installed() -> dict[str, str]:
    """The distributions this Python sees, by canonical name, with their versions."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), distribution.version)
    return found


def _with_version(text: str, installed: dict[str, str]) -> str:
    """`text`, and the version installed here, if one is: a version it excludes."""
    try:
        version = installed.get(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        version = None
    return text if version is None else f"{text} ({version} here)"


def _allows(requirement: Requirement, version: str) -> bool:
    try:
        return requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return True  # a version pip could not compare either: take it as it is


def _count(unmet: list[str]) -> str:
    return "a package" if len(unmet) == 1 else f"{len(unmet)} packages"


def install(requirements: list[str], folder: Path, *, timeout: float = INSTALL_TIMEOUT) -> str:
    """Create a virtualenv in `folder` with `requirements` installed, and return its Python."""
    for requirement in requirements:
        _check(requirement)
    _run([sys.executable, "-m", "venv", str(folder)], "creating a virtualenv", timeout)
    python = str(folder / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "faultfirst-grader.pth").write_text(_grader_sites())
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    command += ["--only-binary", ":all:", *requirements]
    what = f"installing the submission's dependencies ({', '.join(requirements)}; wheels only)"
    _run(command, what, timeout)
    return python


def _check(text: str) -> None:
    """`InstallError` unless `text` names a package (with versions), or the URL of a wheel: pip
    builds a source archive, a folder or a repository it is pointed at, whatever the options,
    and building runs the package's code."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        raise InstallError(
            f"{text!r} is not a package name with versions, nor the URL of a wheel: the grader "
            "installs wheels only (building from source would run the package's code on it)"
        ) from None
    if requirement.url and not urllib.parse.urlparse(requirement.url).path.endswith(".whl"):
        raise InstallError(
            f"{text!r} points at something pip would build: the grader installs wheels only "
            "(building from source would run the package's code on it)"
        )


def _grader_sites() -> str:
    """A .pth line that adds the grader's site folders, processing their own .pth files (which
    is how an editable install of faultfirst is found)."""
    folders = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    unique = list(dict.fromkeys(folder for folder in folders if Path(folder).is_dir()))
    # one line: a .pth file runs lines that start with "import" (a comprehension would not see
    # `site`, as the line runs in a function's scope)
    return f"import site; list(map(site.addsitedir, {unique!r}))\n"


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what} took longer than {timeout:g}s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no output"]
        raise InstallError(f"{what} failed: {errors[-1]}")

"""Install what a submission declares it needs, into a throwaway virtualenv, for its app to run on.

The virtualenv sees the grader's own packages (a ``.pth`` file adds the grader's site folders,
editable installs included), so pip installs only what is missing: a submission that declares
faultfirst's dependencies plus ``tenacity`` costs one small download, not a whole environment.

Wheels only: building a package from source runs its code (``setup.py``, a build backend), and
pip runs here as the grader, outside any box. Installing a wheel runs nothing; what it holds
runs only in the app, boxed.
"""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import urllib.parse
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

INSTALL_TIMEOUT = 600.0  # seconds: a slow mirror, a package built from source


class InstallError(RuntimeError):
    """The submission's dependencies could not be installed; one line for people."""


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

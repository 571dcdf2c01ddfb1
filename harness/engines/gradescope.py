"""``faultfirst export-gradescope DIR``: a Gradescope autograder zip of this installation.

Gradescope grades each submission in a container of its own, built from a zip holding
``setup.sh`` and ``run_autograder`` at its root (its specification:
https://gradescope-autograders.readthedocs.io/en/latest/specs/). Ours also holds the grader
itself, pinned: this installation's harness, its public and hidden scenarios and the starter, in
``faultfirst/``, and its dependencies as installed here, in ``requirements.txt``. otter-grader's
zip, by contrast, installs its grader from PyPI when the image is built; ours grades with exactly
the code the interviewer exported, which ``faultfirst-autograder.json`` names by digest, and which
each run prints for the instructor.

`harness.engines.autograder` is what ``run_autograder`` runs. The zip is the same, byte for byte,
for the same grader and settings: its entries are sorted and dated 1980.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import typing
import zipfile
from pathlib import Path

from .. import __version__
from ..commands.export_candidate import JUNK, JUNK_SUFFIXES, PROJECT_ROOT
from ..grading.tasks import CORE_TASKS, parse_tasks
from . import pins
from .autograder import RUN_TIMEOUT, SETTINGS, Settings

ZIP_NAME = "autograder.zip"
TEMPLATES = Path(__file__).with_name("templates")
SCRIPTS = ("setup.sh", "run_autograder")  # at the zip's root, executable
GRADER = "faultfirst"  # the folder of the zip holding the grader
PACKAGES = ("harness", "scenarios", "exercise_app")  # hidden scenarios included
HIDDEN = Path("scenarios", "hidden")
ISOLATION_CHOICES = ("required", "auto")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ExportError(Exception):
    """The zip could not be written; one line for people."""


def export_gradescope(
    destination: Path,
    *,
    source: Path = PROJECT_ROOT,
    tasks: typing.Sequence[str] = CORE_TASKS,
    isolation: str = "required",
    install_deps: bool = False,
) -> tuple[Path, Settings]:
    """Write ``destination/autograder.zip`` (replacing one there) and return its path and the
    settings it grades with."""
    source = source.resolve()
    _check_source(source)
    if isolation not in ISOLATION_CHOICES:
        raise ExportError(f"--isolation is one of {', '.join(ISOLATION_CHOICES)}")
    try:
        requirements = pins.requirements_text(source / "pyproject.toml")
    except pins.PinError as error:
        raise ExportError(str(error)) from None
    files = _grader_files(source)
    settings = Settings(
        tasks=",".join(tasks),
        isolation=isolation,
        install_deps=install_deps,
        run_timeout=RUN_TIMEOUT,
        faultfirst=__version__,
        grader=_digest(source, files),
        files=len(files),
    )
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / ZIP_NAME
    handle, partial = tempfile.mkstemp(dir=destination, prefix=".autograder-", suffix=".zip")
    os.close(handle)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for script in SCRIPTS:
                _add(archive, script, (TEMPLATES / script).read_bytes(), executable=True)
            _add(archive, "requirements.txt", requirements.encode())
            _add(archive, SETTINGS, settings.text().encode())
            for path in files:
                _add(archive, f"{GRADER}/{path.as_posix()}", (source / path).read_bytes())
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target, settings


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``faultfirst export-gradescope DIR`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "export-gradescope",
        help="write a Gradescope autograder zip that grades with this installation",
        description=f"Write DIR/{ZIP_NAME}, a Gradescope autograder: setup.sh and "
        "run_autograder, and this installation's grader (harness, public and hidden scenarios) "
        "with its dependencies pinned at the versions installed here. For each submission it "
        "grades /autograder/submission as 'faultfirst grade' does and writes "
        "/autograder/results/results.json. Upload it as the assignment's autograder (Ubuntu "
        "base image) and try it on the starter before candidates submit.",
    )
    command.add_argument("dir", type=Path, metavar="DIR", help="the folder to write the zip into")
    command.add_argument(
        "--tasks",
        default=",".join(CORE_TASKS),
        metavar="LIST",
        help="the tasks to grade, comma-separated, or 'all' "
        f"(default: {','.join(CORE_TASKS)})",
    )
    command.add_argument(
        "--isolation",
        choices=ISOLATION_CHOICES,
        default="required",
        help="required (the default): grade only where apps can be boxed (with namespaces, or "
        "as a uid of their own where namespaces are refused: setup.sh makes the hidden "
        "scenarios root's alone), and otherwise write a results.json saying the autograder "
        "cannot run; auto: grade unboxed where Gradescope refuses even that, where a "
        "submission could read the hidden scenarios and forge its results",
    )
    command.add_argument(
        "--install-deps",
        action="store_true",
        help="install what each submission declares (as 'faultfirst grade --install-deps')",
    )
    command.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        tasks = parse_tasks(args.tasks)
        written, settings = export_gradescope(
            args.dir, tasks=tasks, isolation=args.isolation, install_deps=args.install_deps
        )
    except (ExportError, ValueError, OSError) as error:
        print(f"faultfirst export-gradescope: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {written}: faultfirst {settings.faultfirst}, {settings.files} files of the "
          f"grader (hidden scenarios included), {settings.grader}.")  # fmt: skip
    print(f"It grades these tasks: {settings.tasks}; isolation {settings.isolation}"
          + (", installing what a submission declares." if settings.install_deps else "."))
    print("Next: on Gradescope, make a programming assignment, upload this zip as its autograder")
    print("(Ubuntu base image), and test it with the starter before candidates submit. Each run")
    print("prints, for instructors only, the grader's digest and how the app was boxed.")
    return 0


def _check_source(source: Path) -> None:
    missing = [
        path.as_posix()
        for path in (*map(Path, PACKAGES), HIDDEN, Path("pyproject.toml"))
        if not (source / path).exists()
    ]
    if missing:
        raise ExportError(
            f"{source} is not a faultfirst source tree with hidden scenarios (no "
            f"{', '.join(missing)}): export from the interviewer's checkout of faultfirst"
        )


def _grader_files(source: Path) -> list[Path]:
    """The files of `PACKAGES` under `source`, relative to it, junk left out, sorted."""
    found: list[Path] = []
    for package in PACKAGES:
        for folder, dirs, names in os.walk(source / package):
            here = Path(folder).relative_to(source)
            dirs[:] = sorted(name for name in dirs if not _junk(name))
            found += [here / name for name in sorted(names) if not _junk(name)]
    return sorted(found, key=lambda path: path.as_posix())


def _junk(name: str) -> bool:
    return name in JUNK or name.endswith(JUNK_SUFFIXES)


def _digest(source: Path, files: list[Path]) -> str:
    """``sha256:<hex>`` over each file's path and content, each with its length first."""
    hasher = hashlib.sha256()
    for path in files:
        for part in (path.as_posix().encode(), (source / path).read_bytes()):
            hasher.update(len(part).to_bytes(8, "big") + part)
    return f"sha256:{hasher.hexdigest()}"


def _add(archive: zipfile.ZipFile, name: str, data: bytes, *, executable: bool = False) -> None:
    entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    entry.create_system = 3  # Unix: unzip then takes the mode from external_attr
    entry.external_attr = (0o100755 if executable else 0o100644) << 16
    entry.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(entry, data)

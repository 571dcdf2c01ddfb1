"""What a Gradescope autograder's ``run_autograder`` runs: grade ``ROOT/submission`` and leave
``ROOT/results/results.json``, whatever happens.

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/) unzips the
autograder into ``/autograder/source``, runs ``setup.sh`` once when it builds the image, and then,
for each submission, puts the candidate's files in ``/autograder/submission`` and runs
``/autograder/run_autograder`` as root from ``/autograder``. It shows candidates
``results/results.json`` and instructors what the run printed as well.

The grade is `harness.submissions.grader.grade`'s, as ``faultfirst grade`` makes it: the app boxed
(`harness.hosting.isolation`), the grade back on a pipe, the Gradescope report written by the
grader once the grading run has ended. The settings the interviewer exported with (tasks,
isolation, dependencies) come from ``source/faultfirst-autograder.json``. When a submission
cannot be graded, or the grader cannot run, ``results.json`` still says so in one line: an
autograder that leaves none shows candidates a bare failure and tells nobody why.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from .. import __version__, vocabulary
from ..grading.sanitize import one_line
from ..hosting import isolation
from ..submissions import grader
from ..submissions.intake import ARCHIVES, PACKAGE

ROOT_VARIABLE = "FAULTFIRST_AUTOGRADER_ROOT"
DEFAULT_ROOT = Path("/autograder")
SETTINGS = "faultfirst-autograder.json"  # in ROOT/source, written by export-gradescope
# The grade stops itself after this long, so that results.json is written before Gradescope's
# own limit (10 minutes unless the assignment sets another) ends the container with nothing.
RUN_TIMEOUT = 420.0

UNBOXED_HINT = (
    "faultfirst: to grade here all the same, with apps unboxed, export the autograder again with "
    "--isolation auto; a submission could then read the hidden scenarios and forge its results"
)

Json = dict[str, typing.Any]


class SettingsError(Exception):
    """The exported settings are missing or unreadable; one line for people."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the interviewer exported the autograder: what `faultfirst-autograder.json` holds."""

    tasks: str
    isolation: str = "required"
    install_deps: bool = False
    run_timeout: float = RUN_TIMEOUT
    faultfirst: str = __version__
    grader: str = ""  # the digest of the grader's files in the zip
    files: int = 0

    @classmethod
    def read(cls, path: Path) -> Settings:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {field.name for field in dataclasses.fields(cls)}
            return cls(**{key: value for key, value in data.items() if key in known})
        except (OSError, ValueError, TypeError) as error:
            message = f"cannot read {path} ({error}): export the autograder again"
            raise SettingsError(message) from None

    def text(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def options(self) -> grader.Options:
        return grader.Options(
            tasks=self.tasks,
            isolation=self.isolation,
            install_deps=self.install_deps,
            run_timeout=self.run_timeout,
            concurrency=vocabulary.auto_concurrency(),
        )


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.engines.autograder",
        description="Grade Gradescope's submission (ROOT/submission) into "
        "ROOT/results/results.json.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT),
        help=f"Gradescope's folder (default: ${ROOT_VARIABLE}, else {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--check", action="store_true", help="check the installation and say how apps are boxed"
    )
    args = parser.parse_args(argv)
    if args.check:
        return check(args.root)
    return run(args.root)


def check(root: Path) -> int:
    """What ``setup.sh`` runs last: the settings read, the grader importable and complete."""
    try:
        settings = Settings.read(root / "source" / SETTINGS)
        grader.check_installation()
    except (SettingsError, grader.GraderError) as error:
        print(f"faultfirst: {error}", file=sys.stderr)
        return 2
    level = isolation.detect()
    print(f"faultfirst {__version__} is ready to grade {settings.tasks} ({settings.grader}).")
    print(f"Here, at build time, apps would be boxed as: {level.name} {level.why_not}".rstrip())
    return 0


def run(root: Path) -> int:
    """Grade ``root/submission`` into ``root/results/results.json``: 0 once a results.json says
    what happened to the submission, 2 when the grader itself could not run."""
    results = _results_file(root)
    try:
        settings = Settings.read(root / "source" / SETTINGS)
        options = settings.options()
        grader.check_installation()
    except (SettingsError, grader.GraderError, ValueError) as error:
        return _cannot_run(results, str(error))
    try:
        level = grader.isolation_level(options)
    except grader.GraderError as error:  # boxes required, and refused here
        print(UNBOXED_HINT, file=sys.stderr)
        return _cannot_run(results, str(error))
    print(f"faultfirst {__version__}, grader {settings.grader}: tasks {settings.tasks}")
    print(f"isolation: {level.name} {level.why_not}".rstrip(), flush=True)
    source = submission_source(root / "submission")
    try:
        outcome = grader.grade(
            source,
            options,
            reports={"gradescope": results},
            name="submission",
            echo=lambda line: print(line, end="", flush=True),
        )
    except Exception as error:  # our bug: the candidate still gets a results.json saying so
        _cannot_run(results, f"{type(error).__name__}: {error}")
        raise  # and the instructor, who alone sees the output, its traceback
    if outcome.report is None:
        print(f"faultfirst: not graded: {outcome.reason}", file=sys.stderr)
        message = f"Your submission could not be graded: {outcome.reason}."
        _write(results, _unable(message, "not graded", level.name))
        return 0
    score = outcome.report["score"]
    print(f"results.json: {score['earned']}/{score['possible']} ({outcome.status})")
    return 0


def _cannot_run(results: Path, reason: str) -> int:
    """Say in results.json that the grader itself failed, not the submission."""
    print(f"faultfirst: the autograder cannot run: {reason}", file=sys.stderr)
    message = "The autograder could not run, through no fault of yours: tell your interviewer"
    _write(results, _unable(f"{message} ({reason}).", "not run"))
    return 2


def submission_source(folder: Path) -> Path:
    """What to grade of Gradescope's submission folder: the folder, unless the candidate
    uploaded one archive and nothing holding an ``exercise_app/`` beside it."""
    if (folder / PACKAGE).is_dir() or not folder.is_dir():
        return folder
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    archives = [
        entry
        for entry in entries
        if entry.is_file() and entry.name.lower().endswith(tuple(ARCHIVES))
    ]
    folders = [entry for entry in entries if entry.is_dir() and (entry / PACKAGE).is_dir()]
    if len(archives) == 1 and not folders:
        return archives[0]
    return folder


def _results_file(root: Path) -> Path:
    """``root/results/results.json``, none there yet: its folder made, writable by root only
    (it is ours to write, and nobody else's), any results.json left over removed."""
    folder = root / "results"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    results = folder / "results.json"
    results.unlink(missing_ok=True)
    return results


def _unable(message: str, status: str, level: str = "") -> Json:
    """Gradescope's results when there is no grade: no score, and why, in one line."""
    return {
        "score": 0,
        "output": one_line(message, limit=2000),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {"harness_version": __version__, "status": status, "isolation": level},
        "tests": [],
    }


def _write(path: Path, data: Json) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

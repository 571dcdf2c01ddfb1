"""What the app controls reaches no terminal or report raw (`harness.grading.sanitize`)."""

from __future__ import annotations

import pytest

from harness.grading import sanitize
from harness.grading.marks import Scenario
from harness.grading.reports import grade_markdown
from harness.grading.results import Grade, ScenarioResult, Status
from harness.grading.scoreboard import scoreboard

ZWSP = "\u200b"

# What a hostile app prints as its error: clear the screen, home the cursor, paint a green line,
# set the window title, and turn the rest of the line round.
FORGED = "\x1b[2J\x1b[H\x1b[32mtotal 74 / 74  100%\x1b[0m\x1b]0;graded\x07\rok \u202eevil"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (FORGED, "total 74 / 74  100%ok evil"),
        ("line one\nline two", "line one\nline two"),
        ("tab\there", "tab here"),
        ("bell\x07 and null\x00 and del\x7f", "bell and null and del"),
        ("8-bit CSI \x9b31m red", "8-bit CSI 31m red"),
        ("a lone escape \x1b", "a lone escape "),
        ("ünïcode ✓ stays", "ünïcode ✓ stays"),
    ],
)
def test_clean_drops_escape_sequences_and_control_characters(text: str, shown: str) -> None:
    assert sanitize.clean(text) == shown


def test_clean_caps_the_length() -> None:
    cut = sanitize.clean("x" * 5000)
    assert len(cut) == sanitize.LIMIT and cut.endswith("…")
    assert sanitize.clean("x" * 50, limit=10) == "x" * 9 + "…"


def test_one_line_joins_lines() -> None:
    assert sanitize.one_line("the app\n  crashed\r\n\x1b[1mhere") == "the app crashed here"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ping @alice and @org/team", f"ping @{ZWSP}alice and @{ZWSP}org/team"),
        ("see #12 and GH-3", f"see #{ZWSP}12 and GH-{ZWSP}3"),
        ("go to https://evil.example", f"go to https{ZWSP}://evil.example"),
        ("or www.evil.example", f"or www{ZWSP}.evil.example"),
        ("mail a@b.example", f"mail a@{ZWSP}b.example"),
        ("3 @ 4 # 5, plain words", "3 @ 4 # 5, plain words"),
    ],
)
def test_markdown_neither_pings_nor_links(text: str, shown: str) -> None:
    assert sanitize.markdown(text) == shown


def scenario() -> Scenario:
    return Scenario("retry_503", "retries", 3, "A 503 is retried", "Retry it.")


def test_a_result_keeps_no_escape_of_the_apps_and_no_report_shows_one() -> None:
    result = ScenarioResult(scenario(), Status.APP_CRASHED, f"the app printed: {FORGED} @alice")
    assert "\x1b" not in result.reason and "\r" not in result.reason
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(result)
    board = "\n".join(scoreboard(grade))
    markdown = grade_markdown(grade)
    for shown in (board, markdown):
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert f"@{ZWSP}alice" in markdown and "@alice" not in markdown

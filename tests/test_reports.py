"""Reports and the grade behind them: JSON against its published schema, Markdown within GitHub's
limits, the terminal score board, and the evidence drawn from the ledger."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import typing
from pathlib import Path

import jsonschema
import pytest
from grades import new_grade, result, retried, retries

import harness
from harness.fake_llm import Call
from harness.grading.evidence import Attempt, Evidence, UserActivity, evidence_from, unread_tokens
from harness.grading.marks import Scenario
from harness.grading.reports import (
    MARKDOWN_LIMIT,
    grade_json,
    grade_markdown,
    load_schema,
    write_json,
    write_markdown,
)
from harness.grading.results import Grade, Status
from harness.grading.scoreboard import scoreboard

STARTED_AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def sample_grade() -> Grade:
    grade = new_grade()
    for made in [
        result("streams_tokens", Status.PASSED, task="streaming", points=3, attempts=2),
        result(
            "error_event",
            Status.FAILED,
            task="streaming",
            reason="expected `event: error` | got nothing\nthe stream just stopped",
            evidence=retries(3, user_left=[0.5]),
        ),
        result("retry_after", Status.TIMED_OUT, reason="stopped after 10s", attempts=4),
        result("backoff_capped", Status.HARNESS_ERROR, points=1, reason="fixture crashed"),
        result(
            "falls_back",
            Status.APP_DID_NOT_START,
            task="fallback",
            reason="the app exited with code 1: ImportError: no module named <sse>",
        ),
        result("fallback_bonus", Status.PASSED, task="fallback", points=1, bonus=True),
        result("circuit_breaker", Status.FAILED, task="fallback", hidden=True, reason="no breaker"),
    ]:
        grade.add(made)
    return grade


# The grade itself


def test_scores_leave_harness_errors_and_bonus_out_of_what_was_possible() -> None:
    grade = sample_grade()
    scores = {score.task: score for score in grade.task_scores()}
    assert (scores["streaming"].earned, scores["streaming"].possible) == (3, 5)
    assert (scores["retries"].earned, scores["retries"].possible) == (0, 2)  # not 3
    assert (scores["fallback"].earned, scores["fallback"].possible) == (0, 4)
    assert (scores["fallback"].bonus_earned, scores["fallback"].bonus_possible) == (1, 1)
    assert (grade.earned, grade.possible) == (3, 11)
    assert grade.status == "graded"


def test_a_grade_whose_app_never_started_is_ungradable() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(result("a", Status.APP_DID_NOT_START, reason="exit 1"))
    grade.add(result("b", Status.HARNESS_ERROR))
    assert grade.status == "ungradable"


def test_parametrized_cases_keep_the_first_that_did_not_pass() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(result("a", Status.PASSED))
    grade.add(result("a", Status.FAILED, reason="first"))
    grade.add(result("a", Status.FAILED, reason="second"))
    assert [(r.status, r.reason) for r in grade.results] == [(Status.FAILED, "first")]


# JSON


@pytest.fixture(scope="module")
def schema() -> dict[str, typing.Any]:
    return load_schema()


def test_the_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, typing.Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {
        "const": 2,
        "description": schema["properties"]["schema_version"]["description"],
    }


def test_the_schema_describes_every_field_and_allows_no_other(
    schema: dict[str, typing.Any],
) -> None:
    objects = [schema, *schema["$defs"].values()]
    objects += [p for o in objects for p in o.get("properties", {}).values()]
    for node in objects:
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert sorted(node["required"]) == sorted(node["properties"])
        for name, field in node.get("properties", {}).items():
            assert field.get("description"), f"{name} has no description"


def test_the_schema_follows_the_data_model(schema: dict[str, typing.Any]) -> None:
    defs = schema["$defs"]
    assert defs["scenario"]["properties"]["status"]["enum"] == [s.value for s in Status]
    assert list(defs["attempt"]["properties"]) == [f.name for f in dataclasses.fields(Attempt)]
    assert list(defs["evidence"]["properties"]) == [f.name for f in dataclasses.fields(Evidence)]
    scenario_fields = [f.name for f in dataclasses.fields(Scenario)]
    assert set(scenario_fields) <= set(defs["scenario"]["properties"])


@pytest.mark.parametrize(
    "grade",
    [
        sample_grade(),
        Grade(submission="empty", tasks=(), seed=0, app_mode="thread"),
        Grade(
            submission="never started",
            tasks=("retries",),
            seed=0,
            app_mode="subprocess",
            results=[result("a", Status.APP_DID_NOT_START, reason="exit 1")],
        ),
    ],
    ids=["sample", "empty", "ungradable"],
)
def test_the_json_validates_against_its_schema(
    grade: Grade, schema: dict[str, typing.Any]
) -> None:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    data = grade_json(grade, harness_version="9.9.9", started_at=STARTED_AT)
    validator.validate(data)
    validator.validate(json.loads(json.dumps(data)))


def test_the_json_says_what_the_grade_says() -> None:
    grade = sample_grade()
    data = grade_json(grade, started_at=STARTED_AT)
    assert json.loads(json.dumps(data)) == data
    assert (data["schema"], data["schema_version"]) == ("faultfirst-grade", 2)
    assert data["harness_version"] == harness.__version__
    assert data["started_at"] == "2023-11-14T22:13:20Z"
    assert datetime.datetime.fromisoformat(data["started_at"]).timestamp() == STARTED_AT
    assert (data["submission"], data["seed"], data["app_mode"]) == (
        "submissions/ada-lovelace.zip",
        7,
        "subprocess",
    )
    assert data["duration"] == 12.345
    assert data["status"] == "graded"
    assert data["score"] == {"earned": 3, "possible": 11, "percentage": 27.27}
    assert data["tokens"] == {"billed": grade.tokens_billed, "unread": grade.tokens_unread}
    assert data["tasks"][0] == {
        "id": "streaming",
        "title": "Streaming",
        "earned": 3,
        "possible": 5,
        "bonus_earned": 0,
        "bonus_possible": 0,
    }
    assert [s["id"] for s in data["scenarios"]] == [r.scenario.id for r in grade.results]
    by_id = {s["id"]: s for s in data["scenarios"]}
    assert by_id["streams_tokens"]["earned"] == 3
    assert by_id["retry_after"]["status"] == "timed out"
    assert by_id["backoff_capped"]["status"] == "harness error"
    assert by_id["falls_back"]["status"] == "app did not start"
    assert by_id["fallback_bonus"]["bonus"] is True
    assert by_id["circuit_breaker"]["hidden"] is True
    error_event = by_id["error_event"]
    assert error_event["hint"] == "Hint for error_event."
    assert error_event["reason"].startswith("expected `event: error` | got nothing")
    assert error_event["evidence"]["user_left"] == [0.5]
    assert error_event["evidence"]["attempts"][1] == dataclasses.asdict(retried(2))


def test_harness_errors_do_not_count_in_what_was_possible() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("a", Status.PASSED, points=2))
    grade.add(result("b", Status.HARNESS_ERROR, points=5, reason="our bug"))
    data = grade_json(grade, started_at=STARTED_AT)
    assert data["score"] == {"earned": 2, "possible": 2, "percentage": 100.0}
    assert data["tasks"][0]["possible"] == 2
    assert [s["earned"] for s in data["scenarios"]] == [2, 0]


def test_write_json_creates_the_folder_and_ends_with_a_newline(tmp_path: Path) -> None:
    grade = sample_grade()
    grade.submission = "soumission-éèà"
    path = tmp_path / "reports" / "deep" / "grade.json"
    write_json(path, grade, harness_version="1.2.3", started_at=STARTED_AT)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "soumission-éèà" in text
    assert text.startswith('{\n  "schema": "faultfirst-grade",')
    assert json.loads(text) == grade_json(grade, harness_version="1.2.3", started_at=STARTED_AT)


# Markdown


def test_markdown_shows_the_total_and_the_tasks() -> None:
    text = grade_markdown(sample_grade())
    assert text.startswith("## faultfirst: 3 / 11 points (27%)\n")
    assert "seed 7" in text and "subprocess" in text
    assert "| Task | Points | Bonus |" in text
    assert "| Streaming | 3 / 5 |  |" in text
    assert "| Retries | 0 / 2 |  |" in text
    assert "| Fallback | 0 / 4 | +1 / 1 |" in text
    assert "| **Total** | **3 / 11** | +1 / 1 |" in text
    grade = sample_grade()
    assert f"Tokens billed by the fake provider: {grade.tokens_billed}, read by nobody: " in text


def test_markdown_has_no_bonus_column_without_bonus_scenarios() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("a", Status.PASSED))
    text = grade_markdown(grade)
    assert "| Task | Points |\n" in text and "Bonus" not in text
    assert "Nothing: every scenario passed." in text


def test_markdown_lists_what_to_fix_with_reasons_hints_and_evidence() -> None:
    grade = sample_grade()
    text = grade_markdown(grade)
    fix = text.split("### What to fix (5)\n", 1)[1]
    rows = [line for line in fix.splitlines() if line.startswith("| Title of ")]
    assert len(rows) == 5
    for failure in grade.failures():
        row = next(r for r in rows if r.startswith(f"| Title of {_md(failure.scenario.id)} "))
        first_line = failure.reason.splitlines()[0].split(" | ")[0]
        assert _md(first_line) in row
        if failure.status is Status.HARNESS_ERROR:
            assert "harness error, not counted" in row and "costs no points" in row
            assert "Hint for" not in row
        else:
            assert _md(failure.scenario.hint) in row
            assert f"{failure.status.value}, 0/{failure.scenario.points}" in row
    assert "Title of circuit\\_breaker _(hidden)_" in text
    # Every failure with evidence shows the terminal's timeline in a collapsed block.
    for failure in grade.failures():
        if failure.evidence.attempts:
            summary = f"<summary>✗ Title of {failure.scenario.id}: what the app did</summary>"
            assert summary in text
    assert "  the user went away at 0.500s" in text
    assert "```text\n   #       at     wait  model" in text
    # What passed, collapsed.
    assert "<details><summary>Passed: 2 scenarios</summary>" in text
    assert "- ✓ Title of streams\\_tokens (Streaming, 3/3)" in text
    assert "- ✓ Title of fallback\\_bonus (Fallback, 1/1 bonus)" in text
    assert "Left out" not in text


def test_markdown_escapes_table_cells() -> None:
    text = grade_markdown(sample_grade())
    row = next(line for line in text.splitlines() if line.startswith("| Title of error\\_event "))
    assert "\\`event: error\\` \\| got nothing<br>the stream just stopped" in row
    assert row.count(" | ") == 4  # five cells: no pipe of the reason splits one
    row = next(line for line in text.splitlines() if line.startswith("| Title of falls\\_back "))
    assert "no module named \\<sse\\>" in row


def test_markdown_drops_evidence_first_to_fit() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    for number in range(60):
        grade.add(result(f"s{number}", Status.FAILED, reason="wrong", attempts=40))
    text = grade_markdown(grade)
    assert len(text) <= MARKDOWN_LIMIT
    assert sum(line.startswith("| Title of s") for line in text.splitlines()) == 60
    shown = text.count("what the app did</summary>")
    assert 0 < shown < 60
    assert f"the evidence of {60 - shown} scenarios." in text
    assert "more scenarios" not in text


def test_markdown_stays_under_githubs_limit_with_many_long_failures() -> None:
    grade = Grade(submission="x", tasks=("retries", "fallback"), seed=0, app_mode="thread")
    for number in range(20):
        grade.add(result(f"ok{number}", Status.PASSED, task="fallback"))
    for number in range(500):
        grade.add(
            result(
                f"s{number}",
                Status.FAILED,
                reason=("the app | retried too soon\n" * 36),  # just under sanitize.LIMIT
                hint="Wait for Retry-After. " * 50,
                attempts=30,
            )
        )
    text = grade_markdown(grade)
    assert len(text) <= MARKDOWN_LIMIT
    assert text.startswith("## faultfirst: 40 / 1040 points (4%)\n")
    assert "| Title of s0 |" in text
    note = re.search(r"_Left out to fit GitHub's limit of 65,536 characters: (.*)_", text)
    assert note is not None
    shown = sum(line.startswith("| Title of s") for line in text.splitlines())
    assert 0 < shown < 500
    assert f"{500 - shown} more scenarios that did not pass" in note[1]
    assert f"the evidence of {shown} scenarios" in note[1]  # those of the rows shown
    # The rows left room for the short list of what passed.
    assert "<details><summary>Passed: 20 scenarios</summary>" in text
    # A cut cell still ends its row.
    assert all(line.endswith(" |") for line in text.splitlines() if line.startswith("| Title"))


def test_markdown_with_a_small_limit_keeps_the_head() -> None:
    text = grade_markdown(sample_grade(), limit=1_200)
    assert len(text) <= 1_200
    assert text.startswith("## faultfirst: 3 / 11 points (27%)\n")
    assert "more scenarios that did not pass" in text


def test_markdown_keeps_a_count_of_what_passed_when_the_list_does_not_fit() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("broken", Status.FAILED, reason="wrong", attempts=2))
    for number in range(300):
        grade.add(result(f"ok{number}", Status.PASSED))
    text = grade_markdown(grade, limit=5_000)
    assert len(text) <= 5_000
    assert "| Title of broken |" in text and "\n300 scenarios passed.\n" in text
    assert "Left out to fit GitHub's limit of 5,000 characters: " in text
    assert "the list of scenarios that passed." in text
    assert "what the app did</summary>" in text  # the evidence still fits


def test_markdown_never_says_a_missing_list_of_passed_scenarios_was_left_out() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    for number in range(100):
        grade.add(result(f"s{number}", Status.FAILED, reason="wrong " * 200))
    text = grade_markdown(grade)
    note = text.split("_Left out", 1)[1].split("\n", 1)[0]
    assert "more scenarios that did not pass." in note and "scenarios that passed" not in note
    assert "Passed" not in text


def test_write_markdown_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "grade.md"
    path.parent.mkdir()
    path.write_text("old\n")
    write_markdown(path, sample_grade())
    assert path.read_text(encoding="utf-8") == grade_markdown(sample_grade())


def test_markdown_says_when_the_app_never_started() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(result("a", Status.APP_DID_NOT_START, reason="SyntaxError in app.py"))
    text = grade_markdown(grade)
    assert "**The app could not be graded: it never started.**" in text
    assert "SyntaxError in app.py" in text


def _md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|~&#])", r"\\\1", text)


# The terminal's score board


def test_scoreboard_shows_tasks_total_and_what_to_fix() -> None:
    grade = sample_grade()
    lines = scoreboard(grade)
    assert lines[0].split() == ["task", "points"]
    assert lines[1].split() == ["Streaming", "3", "/", "5"]
    assert lines[2].split() == ["Retries", "0", "/", "2"]
    assert lines[3].split() == ["Fallback", "0", "/", "4", "(+1/1", "bonus)"]
    assert lines[4].split() == ["total", "3", "/", "11", "27%"]
    assert lines[5].startswith(f"tokens billed by the fake provider: {grade.tokens_billed}, ")
    text = "\n".join(lines)
    for failure in grade.failures():
        scenario = failure.scenario
        header = next(line for line in lines if f"] {scenario.title} — " in line)
        assert header.startswith(f"✗ [{scenario.task}] ")
        assert f"— {failure.status.value} (" in header
        why = failure.reason.splitlines()[0]
        assert f"  why: {why}" in lines
        if failure.status is Status.HARNESS_ERROR:
            assert header.endswith("(not counted)")
            assert f"  hint: {scenario.hint}" not in lines
        else:
            assert header.endswith(f"(0/{scenario.points})")
            assert f"  hint: {scenario.hint}" in lines
    assert "  note: this is a bug in the grader, not in your app; it costs no points" in lines
    assert "Title of streams_tokens" not in text  # it passed
    assert "    the user went away at 0.500s" in lines


def test_scoreboard_wraps_long_reasons_and_can_leave_evidence_out() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("a", Status.FAILED, reason="word " * 60, attempts=2))
    with_evidence = scoreboard(grade)
    assert "  what the app did:" in with_evidence
    lines = scoreboard(grade, evidence=False)
    assert "  what the app did:" not in lines
    why = [line for line in lines if line.startswith("  why: ") or line.startswith("       ")]
    assert len(why) > 1 and all(len(line) <= 88 for line in why)


def test_scoreboard_says_when_the_app_never_started() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(result("a", Status.APP_DID_NOT_START, reason="exit 1"))
    lines = scoreboard(grade)
    assert "The app could not be graded: it never started, in its one scenario." in lines
    assert "  why: exit 1" in lines


def test_scoreboard_says_once_why_an_app_never_started_not_once_a_scenario() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    missing = "the app imports 'tenacity', which is not installed: pip install it"
    for name in ("a", "b", "c"):
        grade.add(result(name, Status.APP_DID_NOT_START, reason=missing))
    grade.add(result("d", Status.APP_DID_NOT_START, reason="exit 1"))
    lines = scoreboard(grade)
    assert "The app could not be graded: it never started, in any of its 4 scenarios." in lines
    assert [line for line in lines if "why:" in line] == [f"  why: {missing}", "  why: exit 1"]
    assert not [line for line in lines if line.startswith("✗")], "no scenario repeats it"


# Evidence from the ledger


def call(
    number: int, prompt: str, at: float, token_times: list[float], **fields: typing.Any
) -> Call:
    return Call(
        id=number,
        model=fields.pop("model", "fake-large"),
        stream=fields.pop("stream", True),
        prompt=prompt,
        fault=fields.pop("fault", "none"),
        received_at=at,
        status=fields.pop("status", 200),
        token_times=list(token_times),
        tokens=len(token_times),
        ended_at=fields.pop("ended_at", token_times[-1] if token_times else at),
        outcome=fields.pop("outcome", "completed"),
        **fields,
    )


def test_evidence_from_the_ledger() -> None:
    ready = 100.0
    calls = [
        call(1, "Q: capital of France?", 100.5, [], status=503, fault="error(503)",
             outcome="rejected"),
        call(2, "Q: capital of France?", 100.9, [101.0, 101.1, 101.2], model="fake-small"),
        call(3, "Q: tell me a story", 101.5, [101.6, 101.7, 101.8, 101.9],
             disconnected_at=101.75, outcome="disconnected"),
    ]
    users = UserActivity(left=[("tell me a story", 101.65)], read={"capital of France?"})
    evidence = evidence_from(calls, ready, users)
    assert [a.number for a in evidence.attempts] == [1, 2, 3]
    first, second, third = evidence.attempts
    assert (first.at, first.gap, first.first_token, first.status, first.fault) == (
        0.5, None, None, 503, "error(503)"
    )
    assert (second.at, second.gap, second.first_token, second.ended, second.model) == (
        0.9, 0.4, 1.0, 1.2, "fake-small"
    )
    assert (third.gap, third.hung_up, third.outcome, third.tokens) == (0.6, 1.75, "disconnected", 4)
    assert evidence.user_left == [1.65]
    assert evidence.tokens_billed == 7
    assert evidence.tokens_unread == 3  # the story's tokens after 101.65


def test_evidence_of_no_calls() -> None:
    evidence = evidence_from([], 5.0, UserActivity())
    assert evidence == Evidence()


def test_unread_tokens_count_every_attempt_but_the_last_for_one_question() -> None:
    calls = [
        call(1, "system... user: why is the sky blue?", 1.0, [1.1, 1.2, 1.3], outcome="cut"),
        call(2, "system... user: why is the sky blue?", 2.0, [2.1, 2.2]),
        call(3, "system... user: why is the sky blue?", 3.0, [3.1, 3.2, 3.3, 3.4]),
    ]
    users = UserActivity(read={"why is the sky blue?"})
    assert unread_tokens(calls, users) == 5


def test_unread_tokens_group_unknown_prompts_by_prompt() -> None:
    calls = [call(1, "a", 0.0, [0.1, 0.2]), call(2, "b", 0.0, [0.1]), call(3, "a", 1.0, [1.1])]
    assert unread_tokens(calls, UserActivity()) == 2


def test_unread_tokens_count_tokens_after_every_user_asking_had_left() -> None:
    calls = [call(1, "user: hello?", 0.0, [0.1, 0.2, 0.3, 0.4, 0.5])]
    users = UserActivity(left=[("hello?", 0.15), ("hello?", 0.35)])
    assert unread_tokens(calls, users) == 2  # after the last one left, at 0.35


def test_unread_tokens_are_none_when_some_user_read_the_answer() -> None:
    calls = [call(1, "user: hello?", 0.0, [0.1, 0.2, 0.3, 0.4, 0.5])]
    users = UserActivity(left=[("hello?", 0.15)], read={"hello?"})
    assert unread_tokens(calls, users) == 0


def test_unread_tokens_tell_a_question_from_one_that_contains_it() -> None:
    # Each shorter question is in the prompt too; the call answers the longest, which a user
    # read to the end. (Picking any other depends on a set's order: it fails most runs.)
    calls = [call(1, "user: how do I retry?", 0.0, [0.1, 0.2, 0.3])]
    shorter = ["how", "how do", "how do I", "do I retry?", "retry?", "I retry"]
    users = UserActivity(left=[(q, 0.15) for q in shorter], read={"how do I retry?"})
    assert unread_tokens(calls, users) == 0

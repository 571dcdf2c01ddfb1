"""Gradescope's results.json: the shape its autograder specification documents, totals that
match the grade (bonus as extra credit), hidden scenarios kept back until grades are published."""

from __future__ import annotations

import enum
import json
import typing
from pathlib import Path

from grades import attempt, new_grade, result

from harness.grading.evidence import Evidence
from harness.grading.gradescope import gradescope_results, write_gradescope
from harness.grading.results import Grade, Status

# The fields Gradescope's specification documents, and what they hold.
TOP_FIELDS = {
    "score": (int, float),
    "execution_time": (int,),
    "output": (str,),
    "output_format": (str,),
    "test_output_format": (str,),
    "test_name_format": (str,),
    "visibility": (str,),
    "stdout_visibility": (str,),
    "extra_data": (dict,),
    "tests": (list,),
    "leaderboard": (list,),
}
TEST_FIELDS = {
    "score": (int, float),
    "max_score": (int, float),
    "status": (str,),
    "name": (str,),
    "name_format": (str,),
    "number": (str,),
    "output": (str,),
    "output_format": (str,),
    "tags": (list,),
    "visibility": (str,),
    "extra_data": (dict,),
}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "simple_format", "html", "md", "ansi"}


def two_calls() -> Evidence:
    """A 503, then the fallback answering after the user had gone."""
    return Evidence(
        attempts=[
            attempt(1, stream=False, fault="error 503", status=503, at=0.03, ended=0.034),
            attempt(2, model="fake-small", stream=False, at=0.25, gap=0.22, first_token=0.26,
                    ended=0.3, tokens=12),
        ],
        user_left=[0.2],
        tokens_billed=12,
        tokens_unread=12,
    )


def sample_grade() -> Grade:
    grade = new_grade(submission="submissions/ada.zip", duration=12.6)
    for made in [
        result("streams", Status.PASSED, task="streaming", points=3),
        result("hidden_stream", Status.PASSED, task="streaming", hidden=True),
        result("backoff", Status.FAILED, reason="no wait <b>at all</b>", evidence=two_calls()),
        result("retry_after", Status.TIMED_OUT, reason="stopped after 10s"),
        result("fixture", Status.HARNESS_ERROR, points=1, reason="KeyError"),
        result("falls_back", Status.APP_DID_NOT_START, task="fallback", reason="exit 1"),
        result("breaker", Status.FAILED, task="fallback", hidden=True, reason="no breaker"),
        result("bonus_won", Status.PASSED, task="fallback", points=1, bonus=True),
        result("bonus_lost", Status.FAILED, task="fallback", points=2, bonus=True),
    ]:
        grade.add(made)
    return grade


def by_scenario(data: dict[str, typing.Any]) -> dict[str, dict[str, typing.Any]]:
    return {test["extra_data"]["scenario"]: test for test in data["tests"]}


def test_the_shape_is_gradescopes() -> None:
    data = gradescope_results(sample_grade())
    assert set(data) <= set(TOP_FIELDS)
    for name, value in data.items():
        assert isinstance(value, TOP_FIELDS[name]), name
    assert data["output_format"] in FORMATS
    assert data["stdout_visibility"] in VISIBILITIES
    assert "visibility" not in data  # each test says its own
    for test in data["tests"]:
        assert set(test) <= set(TEST_FIELDS)
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        for name, value in test.items():
            assert isinstance(value, TEST_FIELDS[name]), name
        assert test["status"] in {"passed", "failed"}
        assert test["visibility"] in VISIBILITIES
        assert test["output_format"] == test["name_format"] == "text"
        assert all(isinstance(tag, str) for tag in test["tags"])
        assert 0 <= test["score"]
    json.dumps(data, allow_nan=False)  # plain JSON


def test_one_test_per_scenario_named_numbered_and_tagged_by_task() -> None:
    grade = sample_grade()
    data = gradescope_results(grade)
    assert len(data["tests"]) == len(grade.results)
    names = [test["name"] for test in data["tests"]]
    assert names[:2] == ["Streaming · Title of streams", "Streaming · Title of hidden_stream"]
    assert [test["number"] for test in data["tests"]] == [
        "1.1", "1.2", "2.1", "2.2", "2.3", "3.1", "3.2", "3.3", "3.4",
    ]
    tests = by_scenario(data)
    assert tests["backoff"]["tags"] == ["retries"]
    assert tests["bonus_won"]["tags"] == ["fallback", "bonus"]


def test_visible_scenarios_are_numbered_before_the_hidden_ones_of_their_task() -> None:
    data = gradescope_results(sample_grade())
    fallback = [test for test in data["tests"] if test["number"].startswith("3.")]
    visibility = [test["visibility"] for test in fallback]
    assert visibility == ["visible", "visible", "visible", "after_published"]
    assert fallback[-1]["extra_data"]["scenario"] == "breaker"


def test_scores_add_up_to_the_grade_with_bonus_as_extra_credit() -> None:
    grade = sample_grade()
    data = gradescope_results(grade)
    assert (grade.earned, grade.possible) == (5, 13)
    assert sum(test["max_score"] for test in data["tests"]) == grade.possible
    assert sum(test["score"] for test in data["tests"]) == grade.earned + 1
    assert data["score"] == grade.earned + 1
    tests = by_scenario(data)
    won, lost = tests["bonus_won"], tests["bonus_lost"]
    assert (won["score"], won["max_score"], won["status"]) == (1, 0, "passed")
    assert (lost["score"], lost["max_score"], lost["status"]) == (0, 0, "failed")
    assert "+1 / 1 bonus points" in won["output"]


def test_each_scenario_scores_its_points_when_it_passed() -> None:
    tests = by_scenario(gradescope_results(sample_grade()))
    expected = {
        "streams": (3, 3, "passed"),
        "hidden_stream": (2, 2, "passed"),
        "backoff": (0, 2, "failed"),
        "retry_after": (0, 2, "failed"),
        "fixture": (0, 0, "failed"),  # a harness error counts neither way
        "falls_back": (0, 2, "failed"),
        "breaker": (0, 2, "failed"),
    }
    for name, (score, max_score, status) in expected.items():
        test = tests[name]
        assert (test["score"], test["max_score"], test["status"]) == (score, max_score, status)
    assert tests["retry_after"]["extra_data"]["status"] == "timed out"


def test_hidden_scenarios_wait_for_the_grades_to_be_published() -> None:
    grade = sample_grade()
    tests = by_scenario(gradescope_results(grade))
    for made in grade.results:
        expected = "after_published" if made.scenario.hidden else "visible"
        assert tests[made.scenario.id]["visibility"] == expected


def test_the_top_level_output_gives_no_score_away() -> None:
    grade = sample_grade()
    data = gradescope_results(grade)
    assert str(grade.earned) + " /" not in data["output"]
    assert "points" not in data["output"]
    assert "published" in data["output"]  # there are hidden scenarios still to come
    assert data["stdout_visibility"] == "hidden"
    assert data["execution_time"] == 13
    assert data["extra_data"]["seed"] == 7


def test_a_test_output_says_why_how_to_fix_and_what_the_app_did() -> None:
    tests = by_scenario(gradescope_results(sample_grade()))
    output = tests["backoff"]["output"]
    assert output.startswith("failed: 0 / 2 points")
    assert "Why: no wait <b>at all</b>" in output  # plain text: output_format is "text"
    assert "Hint: Hint for backoff." in output
    assert "fake-small" in output and "the user went away at 0.200s" in output
    assert "read by nobody: 12" in output
    passed = tests["streams"]["output"]
    assert passed == "passed: 3 / 3 points"
    harness = tests["fixture"]["output"]
    assert "not counted" in harness and "Hint" not in harness


def test_unknown_statuses_fail_plainly() -> None:
    class Later(enum.StrEnum):
        FLAKY = "flaky"

    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("flakes", typing.cast(Status, Later.FLAKY), reason="varies"))
    (test,) = gradescope_results(grade)["tests"]
    assert (test["status"], test["score"], test["max_score"]) == ("failed", 0, 2)
    assert test["output"].startswith("flaky: 0 / 2 points")
    assert test["extra_data"]["status"] == "flaky"


def test_an_ungradable_or_incomplete_run_says_so() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(result("a", Status.APP_DID_NOT_START, reason="exit 1"))
    assert "never started" in gradescope_results(grade)["output"]
    grade.add(result("b", Status.NOT_RUN, reason="stopped"))
    data = gradescope_results(grade)
    assert "stopped before every scenario ran" in data["output"]
    assert [test["status"] for test in data["tests"]] == ["failed", "failed"]
    assert data["score"] == 0


def test_an_empty_grade_is_still_valid() -> None:
    data = gradescope_results(Grade(submission="x", tasks=(), seed=0, app_mode="thread"))
    assert data["score"] == 0 and data["tests"] == []


def test_write_gradescope_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "autograder" / "results" / "results.json"
    write_gradescope(path, sample_grade())
    assert json.loads(path.read_text(encoding="utf-8")) == gradescope_results(sample_grade())
    write_gradescope(str(path), Grade(submission="x", tasks=(), seed=0, app_mode="thread"))
    assert json.loads(path.read_text(encoding="utf-8"))["tests"] == []

"""The grading plugin as users meet it: marks, --tasks, the score board, statuses, reports.

Every run that starts an app runs pytest in a child process (`runpytest_subprocess`), so that no
app thread, child process, environment variable or imported submission leaks into this one. Runs
that stop at collection or print --help run in-process: they start nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from harness.grading import reports

pytest_plugins = ["pytester"]

# hypothesis's pytest plugin costs each run over a second (pytest rewrites the asserts of every
# hypothesis module, and an in-process run imports them afresh); no scenario here uses it.
# Thread mode, fast, unless a test asks for another: these submissions are our own.
QUICK = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--faultfirst-app-mode", "thread")
JSON = "--faultfirst-json"

STARTER = Path(__file__).resolve().parents[1] / "exercise_app"

CONFTEST = """
    import pytest

    @pytest.fixture(scope="session")
    def anyio_backend():
        return "asyncio"
"""

# A tiny submission: answers "42", hangs forever when the question says "hang".
APP = """
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def answer(request):
        question = (await request.json())["question"]
        if "hang" in question:
            await anyio.sleep_forever()
        return JSONResponse({"answer": "42"})

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/api/answer", answer, methods=["POST"])]
    )
"""

# An app.py that notes every import in imports.log (next to exercise_app/), then fails on line 6.
FAILING_APP = """\
import pathlib

with open(pathlib.Path(__file__).parents[1] / "imports.log", "a") as log:
    log.write("imported\\n")

raise RuntimeError("no config file")
"""

HEADER = """
    import pytest
    from harness.fake_llm import faults as f

    pytestmark = pytest.mark.anyio
"""

PASSING = """
    @pytest.mark.scenario(task="retries", points=2, title="It answers", hint="Answer it.",
                          checks="retries.statuses")
    async def test_answers(client, question):
        assert (await client.ask(question)).answer() == "42"
"""

FAILING = """
    @pytest.mark.scenario(task="retries", points=3, title="It says 43", hint="Say 43 instead.",
                          checks="retries.statuses")
    async def test_says_43(client, question):
        said = (await client.ask(question)).answer()
        assert said == "43", f"the app said {said!r}, not '43'"
"""

FALLBACK = """
    @pytest.mark.scenario(task="fallback", points=1, title="It falls back", hint="Fall back.",
                          checks="retries.statuses")
    async def test_falls_back(client, question):
        assert (await client.ask(question)).answer() == "42"
"""

HARNESS_BUG = """
    @pytest.mark.scenario(task="retries", points=4, title="A buggy scenario", hint="None.",
                          checks="retries.statuses")
    async def test_buggy(client):
        undefined_name  # noqa: F821
"""

HANGS = """
    @pytest.mark.scenario(task="retries", points=1, title="It hangs", hint="Never hang.",
                          checks="retries.statuses")
    async def test_hangs(client, question):
        assert (await client.ask(question + " hang")).answer() == "42"
"""

# Against the real starter, which turns a provider's 503 into its own 500.
RETRIED_503 = """
    @pytest.mark.scenario(task="retries", points=3, title="A 503 is retried", hint="Retry 5xx.",
                          checks="retries.statuses")
    async def test_503_is_retried(client, fake_llm, question):
        fake_llm.script(f.error(503), prompt_contains=question)
        reply = await client.ask(question)
        assert reply.status == 200, f"after one 503 the user got {reply.status}"
"""

ANSWERED = """
    @pytest.mark.scenario(task="retries", points=2, title="It answers", hint="Answer.",
                          checks="retries.statuses")
    async def test_answers(client, fake_llm, question):
        assert (await client.ask(question)).answer() == fake_llm.calls[-1].text
"""


# -- helpers --------------------------------------------------------------------------------------


def scenarios(pytester: pytest.Pytester, *parts: str, name: str = "test_scenarios") -> None:
    """A conftest with `anyio_backend` and a scenario file made of `parts`."""
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    source = "\n".join(textwrap.dedent(part) for part in (HEADER, *parts))
    pytester.makepyfile(**{name: source})


def submission(pytester: pytest.Pytester, app: str = APP, name: str = "submission") -> Path:
    package = pytester.path / name / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(app))
    return package.parent


def starter(pytester: pytest.Pytester) -> Path:
    folder = pytester.path / "starter"
    shutil.copytree(STARTER, folder / "exercise_app", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def grade(pytester: pytest.Pytester, folder: Path, *args: str) -> pytest.RunResult:
    """Run pytest with the plugin in a child process against the submission in `folder`."""
    return pytester.runpytest_subprocess(
        *QUICK, "--faultfirst-submission", str(folder), *args, timeout=60
    )


def board(result: pytest.RunResult) -> list[str]:
    """The lines of the score board, which ends where the short summary begins."""
    lines = result.outlines
    starts = [i for i, line in enumerate(lines) if "faultfirst score board" in line]
    assert starts, "no score board was printed"
    start = starts[0]
    end = next(
        (i for i, line in enumerate(lines[start + 1 :], start + 1) if line.startswith("====")),
        len(lines),
    )
    return lines[start + 1 : end]


def section(result: pytest.RunResult, test: str) -> str:
    """The FAILURES/ERRORS section of `test`: from its ``___ test ___`` header to the next one."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and f" {test} " in line)
    end = next(
        (
            i
            for i, line in enumerate(lines[start + 1 :], start + 1)
            if line.startswith(("___", "===="))
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def load_json(path: Path) -> dict[str, typing.Any]:
    data: dict[str, typing.Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# -- 1. marks are checked at collection -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (
            'task="retry", points=1, title="T", hint="H", checks="settings.env"',
            "*test_marks.py::test_graded: unknown task 'retry' (tasks: streaming, *",
        ),
        (
            'task="retries", title="T", hint="H", checks="settings.env"',
            "*test_marks.py::test_graded: *missing points=*",
        ),
        (
            'task="retries", points=1, hint="H", checks="settings.env"',
            "*test_marks.py::test_graded: *missing title=*",
        ),
        (
            'task="retries", points=1, title="T", checks="settings.env"',
            "*test_marks.py::test_graded: *missing hint=*",
        ),
        (
            'task="retries", points=0, title="T", hint="H", checks="settings.env"',
            "*test_marks.py::test_graded: points= must be a whole number of at least 1, not 0*",
        ),
        (
            '"retries", 1, "T", "H"',
            "*test_marks.py::test_graded: write the scenario mark with keywords*",
        ),
        ('task="retries", points=1, title="T", hint="H"', "*test_graded: *missing checks=*"),
        (
            'task="retries", points=1, title="T", hint="H", checks="retries.cap", needs=["retry"]',
            "*test_graded: needs= lists other tasks, from: streaming, *",
        ),
        (
            'task="retries", points=1, title="T", hint="H", checks=[]',
            "*test_graded: checks= must list the ids of the requirements it checks*",
        ),
        (
            'task="retries", points=1, title="T", hint="H", checks=["retries.everything"]',
            "*test_graded: checks= names requirements that are not in *: retries.everything*",
        ),
    ],
    ids=[
        "unknown-task",
        "no-points",
        "no-title",
        "no-hint",
        "zero-points",
        "positional",
        "no-checks",
        "unknown-needed-task",
        "empty-checks",
        "unknown-requirement",
    ],
)
def test_a_wrong_mark_fails_the_run_at_collection_naming_the_test(
    pytester: pytest.Pytester, mark: str, message: str
) -> None:
    pytester.makepyfile(
        test_marks=f"""
        import pytest

        def test_plain():
            pass

        @pytest.mark.scenario({mark})
        def test_graded():
            pass
        """
    )
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*passed*")  # nothing ran, not even the plain test


def test_two_scenarios_with_the_same_name_fail_the_run(pytester: pytest.Pytester) -> None:
    for name in ("test_one", "test_two"):
        pytester.makepyfile(
            **{
                name: """
                import pytest

                @pytest.mark.scenario(task="retries", points=1, title="T", hint="H",
                                      checks="retries.statuses")
                def test_same():
                    pass
                """
            }
        )
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_two.py::test_same: another scenario is named same (test_one.py::test_same)*"]
    )


# -- 2. --tasks -----------------------------------------------------------------------------------


def test_tasks_deselects_the_scenarios_of_other_tasks(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING, FALLBACK)
    result = grade(pytester, submission(pytester), "--faultfirst-tasks", "retries")
    result.assert_outcomes(passed=1, deselected=1)
    lines = board(result)
    assert any(line.split() == ["Retries", "2", "/", "2"] for line in lines), lines
    assert not [line for line in lines if "Fallback" in line or "Streaming" in line], lines


NEEDS_RETRIES = """
    @pytest.mark.scenario(task="fallback", points=1, title="Falls back after retries",
                          hint="Retry, then fall back.", checks="fallback.unavailable",
                          needs=["retries"])
    async def test_falls_back_after_retries(client, question):
        assert (await client.ask(question)).answer() == "42"
"""


def test_a_scenario_that_needs_another_task_is_graded_only_along_with_it(
    pytester: pytest.Pytester,
) -> None:
    scenarios(pytester, PASSING, FALLBACK, NEEDS_RETRIES)
    alone = grade(pytester, submission(pytester), "--faultfirst-tasks", "fallback")
    alone.assert_outcomes(passed=1, deselected=2)
    assert any(line.split() == ["Fallback", "1", "/", "1"] for line in board(alone))
    both = grade(
        pytester, submission(pytester, name="again"), "--faultfirst-tasks", "fallback,retries"
    )
    both.assert_outcomes(passed=3)
    assert any(line.split() == ["Fallback", "2", "/", "2"] for line in board(both))


def test_the_submission_may_be_the_exercise_app_folder_itself(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING)
    path = pytester.path / "grade.json"
    result = grade(pytester, submission(pytester) / "exercise_app", JSON, str(path))
    result.assert_outcomes(passed=1)
    assert load_json(path)["submission"] == str(pytester.path / "submission")


def test_an_unknown_task_is_a_usage_error_listing_the_tasks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(*QUICK, "--faultfirst-tasks", "nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--faultfirst-tasks: unknown task nonsense; choose from streaming, cancellation, "
            "retries, "
            "fallback, metadata, timeouts, jobs, structured, or all*"
        ]
    )


# -- 3. the score board ---------------------------------------------------------------------------


def test_the_score_board_shows_tasks_total_and_what_to_fix(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING, FAILING, FALLBACK)
    result = grade(pytester, submission(pytester))
    result.assert_outcomes(passed=2, failed=1)
    lines = board(result)
    rows = [line.split() for line in lines]
    assert ["Retries", "2", "/", "5"] in rows, lines
    assert ["Fallback", "1", "/", "1"] in rows, lines
    assert ["Streaming", "0", "/", "0"] in rows, lines
    assert ["total", "3", "/", "6", "50%"] in rows, lines
    failure = lines.index("✗ [retries] It says 43 — failed (0/3)")
    # The assertion's own message, without pytest's "assert '42' == '43'" explanation.
    assert lines[failure + 1 : failure + 3] == [
        "  why: the app said '42', not '43'",
        "  hint: Say 43 instead.",
    ], lines
    assert not [line for line in lines if "It answers" in line or "It falls back" in line]
    assert "assert '42'" not in result.stdout.str()


def test_a_failed_scenario_is_reported_without_a_traceback(pytester: pytest.Pytester) -> None:
    scenarios(pytester, FAILING)
    result = grade(pytester, submission(pytester))
    result.assert_outcomes(failed=1)
    report = section(result, "test_says_43")
    assert "why: the app said '42', not '43'" in report
    assert "hint: Say 43 instead." in report
    for trace in ("Traceback", "def test_says_43", "\nE ", "test_scenarios.py:", "AssertionError"):
        assert trace not in report, report
    summary = "FAILED test_scenarios.py::test_says_43 - ✗ [retries] It says 43 — failed (0/3)"
    assert summary in result.outlines


# -- 4. statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "subprocess"])
def test_an_app_that_cannot_import_did_not_start_in_any_scenario(
    pytester: pytest.Pytester, mode: str
) -> None:
    scenarios(pytester, PASSING, FAILING, FALLBACK)
    folder = submission(pytester, FAILING_APP)
    report = pytester.path / "grade.json"
    # Unboxed, so that the app can note its imports in its folder (a boxed one cannot write there);
    # one lane, since each lane starts apps of its own, and so tries the import once.
    unboxed = ("--faultfirst-isolation", "none", "--faultfirst-concurrency", "1")
    result = grade(pytester, folder, "--faultfirst-app-mode", mode, *unboxed, JSON, str(report))
    result.assert_outcomes(errors=3)
    lines = board(result)
    assert "The app could not be graded: it never started, in any of its 3 scenarios." in lines
    assert not [line for line in lines if "— app did not start (0/" in line], "said once"
    assert len([line for line in lines if "RuntimeError: no config file" in line]) == 1, lines
    data = load_json(report)
    assert data["status"] == "ungradable"
    assert [s["status"] for s in data["scenarios"]] == ["app did not start"] * 3
    reasons = {s["reason"] for s in data["scenarios"]}
    assert len(reasons) == 1, reasons  # the same reason: the failure of the first start
    (reason,) = reasons
    assert "\n" not in reason and "RuntimeError: no config file" in reason, reason
    if mode == "thread":
        assert reason.endswith("(exercise_app/app.py, line 6)"), reason
    # The failure is remembered: the app was imported once, not once per scenario.
    assert (folder / "imports.log").read_text().splitlines() == ["imported"]


@pytest.mark.parametrize("mode", ["thread", "subprocess"])
def test_a_scenario_whose_app_hangs_times_out_and_the_next_one_runs(
    pytester: pytest.Pytester, mode: str
) -> None:
    scenarios(pytester, HANGS, PASSING)
    report = pytester.path / "grade.json"
    result = grade(
        pytester,
        submission(pytester),
        *("--faultfirst-app-mode", mode, "--faultfirst-scenario-timeout", "1", JSON, str(report)),
    )
    result.assert_outcomes(passed=1, failed=1)
    lines = board(result)
    assert "✗ [retries] It hangs — timed out (0/1)" in lines, lines
    assert "  why: the scenario was still running after 1s, so the app was stopped" in lines
    data = load_json(report)
    assert [(s["id"], s["status"]) for s in data["scenarios"]] == [
        ("hangs", "timed out"),
        ("answers", "passed"),
    ]


def test_a_scenario_that_outlived_its_time_limit_never_passes(pytester: pytest.Pytester) -> None:
    # The reply comes only once the time limit has stopped the app (in thread mode, a 500), and
    # this scenario takes whatever comes: it ends after its time limit, without failing.
    scenarios(
        pytester,
        """
        @pytest.mark.scenario(task="retries", points=1, title="It hangs", hint="Never hang.",
                          checks="retries.statuses")
        async def test_hangs(client, question):
            try:
                await client.ask(question + " hang")
            except Exception:
                pass
        """,
    )
    result = grade(pytester, submission(pytester), "--faultfirst-scenario-timeout", "1")
    assert "✗ [retries] It hangs — timed out (0/1)" in board(result)


def test_a_scenario_that_crashes_is_a_harness_error_not_counted(
    pytester: pytest.Pytester,
) -> None:
    scenarios(pytester, HARNESS_BUG, PASSING)
    result = grade(pytester, submission(pytester))
    result.assert_outcomes(passed=1, failed=1)
    lines = board(result)
    assert "✗ [retries] A buggy scenario — harness error (not counted)" in lines, lines
    assert "  why: NameError: name 'undefined_name' is not defined" in lines
    assert "  note: this is a bug in the grader, not in your app; it costs no points" in lines
    rows = [line.split() for line in lines]
    assert ["Retries", "2", "/", "2"] in rows, lines  # its 4 points are not possible points
    assert ["total", "2", "/", "2", "100%"] in rows, lines


# -- 5. reports -----------------------------------------------------------------------------------


def test_grade_json_and_markdown(pytester: pytest.Pytester) -> None:
    scenarios(pytester, ANSWERED, RETRIED_503, HARNESS_BUG)
    json_path, md_path = pytester.path / "out" / "grade.json", pytester.path / "out" / "grade.md"
    result = grade(
        pytester, starter(pytester), JSON, str(json_path), "--faultfirst-md", str(md_path)
    )
    result.assert_outcomes(passed=1, failed=2)

    data = load_json(json_path)
    schema = reports.load_schema()
    validator = jsonschema.Draft202012Validator
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(data)
    assert data["status"] == "graded" and data["app_mode"] == "thread"
    assert data["submission"] == str(pytester.path / "starter")
    assert data["score"] == {"earned": 2, "possible": 5, "percentage": 40.0}
    by_id = {s["id"]: s for s in data["scenarios"]}
    assert [s["id"] for s in data["scenarios"]] == ["answers", "503_is_retried", "buggy"]
    assert [(s["status"], s["points"], s["earned"]) for s in by_id.values()] == [
        ("passed", 2, 2),
        ("failed", 3, 0),
        ("harness error", 4, 0),
    ]
    assert by_id["503_is_retried"]["reason"] == "after one 503 the user got 500"
    answered = by_id["answers"]["evidence"]["attempts"]
    assert [(a["number"], a["model"], a["status"], a["outcome"]) for a in answered] == [
        (1, "fake-large", 200, "completed")
    ]
    assert answered[0]["tokens"] > 0
    assert by_id["answers"]["evidence"]["tokens_billed"] == answered[0]["tokens"]
    failed = by_id["503_is_retried"]["evidence"]["attempts"]
    assert [(a["model"], a["status"], a["fault"]) for a in failed] == [
        ("fake-large", 503, "error 503")
    ]
    assert by_id["buggy"]["evidence"]["attempts"] == []

    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.startswith("## faultfirst: 2 / 5 points (40%)\n")
    assert "| **Total** | **2 / 5** |" in markdown
    row = (
        "| A 503 is retried | Retries | failed, 0/3 | after one 503 the user got 500 "
        "| Retry 5xx. |"
    )
    assert row in markdown
    assert "<summary>✗ A 503 is retried: what the app did</summary>" in markdown


def test_scenarios_refuse_to_be_spread_over_workers(pytester: pytest.Pytester) -> None:
    # Each xdist worker would grade, and report, only its own share of the scenarios: rather
    # than a wrong grade, the run fails and writes none.
    scenarios(pytester, PASSING, FAILING)
    path = pytester.path / "grade.json"
    result = grade(pytester, submission(pytester), "-n", "2", JSON, str(path))
    assert result.ret != 0
    assert not path.exists()



def test_grade_json_says_how_long_the_run_took(pytester: pytest.Pytester) -> None:
    scenarios(
        pytester,
        """
        import anyio

        @pytest.mark.scenario(task="retries", points=1, title="Slow", hint="H",
                              checks="retries.statuses")
        async def test_slow(client):
            await anyio.sleep(0.2)
        """,
    )
    path = pytester.path / "grade.json"
    grade(pytester, submission(pytester), JSON, str(path)).assert_outcomes(passed=1)
    data = load_json(path)
    assert data["scenarios"][0]["duration"] >= 0.2
    assert data["duration"] >= data["scenarios"][0]["duration"]


def junit_cases(path: Path) -> dict[str, dict[str, str]]:
    """Each testcase's name -> its properties."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases[case.attrib["name"]] = {
            prop.attrib["name"]: prop.attrib["value"] for prop in case.iter("property")
        }
    return cases


def test_junit_xml_lists_every_scenario(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING, FAILING)
    path = pytester.path / "junit.xml"
    grade(pytester, submission(pytester), "--junitxml", str(path)).assert_outcomes(
        passed=1, failed=1
    )
    assert set(junit_cases(path)) == {"test_answers", "test_says_43"}


def test_junit_xml_testcases_carry_the_scenarios_properties(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING, FAILING)
    path = pytester.path / "junit.xml"
    grade(pytester, submission(pytester), "--junitxml", str(path)).assert_outcomes(
        passed=1, failed=1
    )
    cases = junit_cases(path)
    assert cases["test_answers"] == {
        "task": "retries",
        "points": "2",
        "earned": "2",
        "status": "passed",
        "title": "It answers",
    }
    assert cases["test_says_43"] == {
        "task": "retries",
        "points": "3",
        "earned": "0",
        "status": "failed",
        "title": "It says 43",
    }


# -- 5a. scenarios side by side -------------------------------------------------------------------

# Each notes the process it ran in and when it started and ended, and takes a second.
NOTED = """
    import os, time, anyio

    def note(name, started):
        with open("runs.log", "a") as log:
            log.write(f"{name} {os.getpid()} {started} {time.time()}\\n")
"""
SLOW = """
    @pytest.mark.scenario(task="retries", points=1, title="Slow {n}", hint="H",
                          checks="retries.statuses")
    async def test_slow_{n}(client, question):
        started = time.time()
        await anyio.sleep(1.0)
        assert (await client.ask(question)).answer() == "42"
        note("slow_{n}", started)
"""


def runs(pytester: pytest.Pytester) -> list[tuple[str, int, float, float]]:
    lines = (pytester.path / "runs.log").read_text().splitlines()
    return [(n, int(pid), float(a), float(b)) for n, pid, a, b in map(str.split, lines)]


def test_scenarios_run_side_by_side_in_forked_lanes(pytester: pytest.Pytester) -> None:
    scenarios(pytester, NOTED, *(SLOW.format(n=n) for n in range(4)))
    result = grade(pytester, submission(pytester), "--faultfirst-concurrency", "2")
    result.assert_outcomes(passed=4)
    seen = runs(pytester)
    assert len({pid for _, pid, _, _ in seen}) == 2  # two lanes, each running two in turn
    assert all(pid != result.ret for _, pid, _, _ in seen)
    # Side by side: the first two started before either ended (each sleeps a second first; a
    # fork takes milliseconds, so only a machine stalled for a second could fail this).
    first, second = sorted(seen, key=lambda run: run[2])[:2]
    assert second[2] < first[3], seen


def test_lanes_grade_as_one_process_does(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING, FAILING, FALLBACK, HARNESS_BUG, HANGS)
    folder, outputs = submission(pytester), []
    for lanes in ("1", "3"):
        path, junit = pytester.path / f"grade{lanes}.json", pytester.path / f"junit{lanes}.xml"
        limits = ("--faultfirst-scenario-timeout", "1", "--faultfirst-concurrency", lanes)
        result = grade(pytester, folder, *limits, JSON, str(path), "--junitxml", str(junit))
        result.assert_outcomes(passed=2, failed=3)
        data = load_json(path)
        scenarios_seen = [(s["id"], s["status"], s["reason"]) for s in data["scenarios"]]
        outputs.append((board(result), scenarios_seen, junit_cases(junit), data["score"]))
    assert outputs[0] == outputs[1]
    assert [id for id, _, _ in outputs[0][1]] == ["answers", "says_43", "falls_back", "buggy", "hangs"]


def test_the_runs_time_limit_stops_every_lane(pytester: pytest.Pytester) -> None:
    scenarios(pytester, HANGS, HANGS.replace("test_hangs", "test_hangs_too"), PASSING, FAILING)
    path = pytester.path / "grade.json"
    limits = ("--faultfirst-run-timeout", "1.5", "--faultfirst-concurrency", "2")
    grade(pytester, submission(pytester), *limits, JSON, str(path))
    seen = {s["id"]: (s["status"], s["reason"]) for s in load_json(path)["scenarios"]}
    reason = "the run's time limit of 1.5s passed during this scenario, so the app was stopped"
    assert seen["hangs"] == seen["hangs_too"] == ("timed out", reason)
    reason = "the run's time limit of 1.5s passed before this scenario ran"
    assert seen["answers"] == seen["says_43"] == ("not run", reason)


def test_a_lane_that_dies_leaves_a_harness_error_and_the_rest_go_on(
    pytester: pytest.Pytester,
) -> None:
    dies = PASSING.replace("test_answers", "test_dies").replace("assert (", "os._exit(3)\n        (")
    scenarios(pytester, "import os", dies, PASSING, FAILING, FALLBACK)
    path = pytester.path / "grade.json"
    grade(pytester, submission(pytester), "--faultfirst-concurrency", "2", JSON, str(path))
    seen = {s["id"]: (s["status"], s["reason"]) for s in load_json(path)["scenarios"]}
    reason = "the process running this scenario failed (3): a bug in the harness"
    assert seen == {
        "dies": ("harness error", reason),
        "answers": ("passed", ""),
        "says_43": ("failed", "the app said '42', not '43'"),
        "falls_back": ("passed", ""),
    }


def test_what_a_dead_lane_was_to_run_next_is_run_by_another(pytester: pytest.Pytester) -> None:
    # Two lanes: the first is given `dies` and then `says_43`; the second `answers`, then the
    # end, as nothing else waits. The first dies: `says_43` goes to the second if it is still
    # taking scenarios, else to a lane started for it. Either way it runs, as it would have.
    dies = PASSING.replace("test_answers", "test_dies").replace("assert (", "os._exit(3)\n        (")
    scenarios(pytester, "import os", dies, PASSING, FAILING)
    path = pytester.path / "grade.json"
    grade(pytester, submission(pytester), "--faultfirst-concurrency", "2", JSON, str(path))
    seen = {s["id"]: (s["status"], s["reason"]) for s in load_json(path)["scenarios"]}
    assert seen == {
        "dies": ("harness error", "the process running this scenario failed (3): a bug in the harness"),
        "answers": ("passed", ""),
        "says_43": ("failed", "the app said '42', not '43'"),
    }


def test_a_lane_started_late_keeps_the_runs_time_limit(pytester: pytest.Pytester) -> None:
    # As above: the first lane is given `dies` (after 1 s) and then `hangs`; the second
    # `answers`, then the end. `hangs` goes to a lane started when the first dies, whose timer
    # must end with the run's, 4 s after it started, not 4 s after the new lane's start.
    dies = PASSING.replace("test_answers", "test_dies").replace(
        "assert (", "await anyio.sleep(1.0)\n        os._exit(3)\n        ("
    )
    scenarios(pytester, "import os\nimport anyio", dies, PASSING, HANGS)
    path = pytester.path / "grade.json"
    limits = ("--faultfirst-run-timeout", "4", "--faultfirst-scenario-timeout", "10")
    grade(pytester, submission(pytester), *limits, "--faultfirst-concurrency", "2", JSON, str(path))
    seen = {s["id"]: s for s in load_json(path)["scenarios"]}
    reason = "the run's time limit of 4s passed during this scenario, so the app was stopped"
    assert (seen["hangs"]["status"], seen["hangs"]["reason"]) == ("timed out", reason)
    # `hangs` starts once `dies` has slept its 1 s, so the run's limit stops it 3 s in at most,
    # less whatever starting the run, the lanes and the apps took; a fresh limit would give it
    # 4 s. The half second between is for a loaded machine, where timers fire late. (A 1.5 s
    # limit failed 1 run in 6 at a load average of 11-14, likely by leaving `hangs` too little
    # time once the apps had started.)
    assert seen["hangs"]["duration"] < 3.5, seen["hangs"]


def test_concurrency_must_be_a_whole_number(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING)
    result = pytester.runpytest("--faultfirst-concurrency", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--faultfirst-concurrency: a whole number of 1 or more, or auto, not '0'*"]
    )


# -- 5b. untrusted folders, and the grade's channel ------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "used"), [((), "subprocess"), (("--faultfirst-app-mode", "thread"), "thread")]
)
def test_another_folder_is_run_in_a_child_process_unless_thread_mode_is_asked_for(
    pytester: pytest.Pytester, asked: tuple[str, ...], used: str
) -> None:
    scenarios(pytester, PASSING)
    report = pytester.path / "grade.json"
    result = pytester.runpytest_subprocess(
        *QUICK[:4], "--faultfirst-submission", str(submission(pytester)), *asked, JSON, str(report)
    )
    result.assert_outcomes(passed=1)
    assert load_json(report)["app_mode"] == used


def run_with_channel(pytester: pytest.Pytester, *args: str) -> tuple[int, bytes, str]:
    """Run the scenarios with ``--faultfirst-grade-fd``: the exit status, what came through, the
    output."""
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "pytest", *QUICK, "--faultfirst-grade-fd", str(write_end)]
    command += args
    with os.fdopen(read_end, "rb") as channel:
        process = subprocess.Popen(
            command, cwd=pytester.path, pass_fds=(write_end,), stdout=subprocess.PIPE, env={
                **os.environ, "TMPDIR": str(pytester.path / "tmp")
            },
        )
        os.close(write_end)
        sent = channel.read()
        output = process.communicate(timeout=60)[0].decode()
    return process.returncode, sent, output


def test_the_grade_goes_through_the_channel_and_the_run_exits_0_once_it_is_sent(
    pytester: pytest.Pytester,
) -> None:
    scenarios(pytester, PASSING, FAILING)
    (pytester.path / "tmp").mkdir()
    status, sent, output = run_with_channel(
        pytester,
        *("--faultfirst-submission", str(submission(pytester))),
        *("--faultfirst-grade-fd-reports", "json,md,junit"),
    )
    assert status == 0, output  # though a scenario failed: the run did its job
    reports_sent = json.loads(sent)
    assert sorted(reports_sent) == ["json", "junit", "md"]
    assert json.loads(reports_sent["json"])["score"]["earned"] == 2
    assert reports_sent["md"].startswith("## faultfirst: 2 / 5 points")
    assert ET.fromstring(reports_sent["junit"]).tag == "testsuites"
    assert list((pytester.path / "tmp").iterdir()) == []  # the JUnit file's folder is gone


def test_isolation_required_in_thread_mode_is_refused(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING)
    result = pytester.runpytest(*QUICK, "--faultfirst-isolation", "required")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--faultfirst-isolation required, but thread mode runs the app inside the grader*"]
    )


def test_a_run_that_cannot_send_its_grade_is_told_so(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING)
    result = pytester.runpytest(*QUICK, "--faultfirst-grade-fd", "987")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--faultfirst-grade-fd: 987 is not an open file descriptor*"])
    reports = ("--faultfirst-grade-fd-reports", "json,pdf")
    result = pytester.runpytest(*QUICK, "--faultfirst-grade-fd", "2", *reports)
    result.stderr.fnmatch_lines(["*--faultfirst-grade-fd-reports: unknown report 'pdf'*"])


# -- 6. --help ------------------------------------------------------------------------------------


def test_help_documents_the_grading_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "faultfirst: grade LLM apps under injected faults:",
            "*--faultfirst-submission=DIR*",
            "*the app to grade*",
            "*--faultfirst-tasks=LIST*",
            "*comma-separated tasks to grade*",
            "*--faultfirst-app-mode={auto,thread,subprocess}*",
            "*--faultfirst-isolation={auto,required,none}*",
            "*--faultfirst-scenario-timeout=SECONDS*",
            "*--faultfirst-json=PATH*",
            "*write the grade as JSON*",
            "*--faultfirst-md=PATH*write the grade as Markdown*",
        ]
    )


# -- 7. tests that are not scenarios --------------------------------------------------------------


def test_without_scenarios_there_is_no_board_and_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plain(fake_llm):
            assert fake_llm.calls == []
        """
    )
    path = pytester.path / "grade.json"
    result = grade(pytester, pytester.path / "nowhere", JSON, str(path))
    result.assert_outcomes(passed=1)
    assert "score board" not in result.stdout.str()
    assert not path.exists()


def test_a_plain_test_next_to_scenarios_is_left_alone(pytester: pytest.Pytester) -> None:
    scenarios(pytester, PASSING)
    pytester.makepyfile(
        test_plain="""
        def test_plain_failure():
            assert 1 + 1 == 3
        """
    )
    result = grade(pytester, submission(pytester))
    result.assert_outcomes(passed=1, failed=1)
    # pytest's own report, with its traceback and assertion explanation
    assert "E       assert (1 + 1) == 3" in section(result, "test_plain_failure")
    lines = board(result)
    assert ["total", "2", "/", "2", "100%"] in [line.split() for line in lines], lines
    assert not [line for line in lines if "plain" in line], lines


# -- 8. evidence ----------------------------------------------------------------------------------


def test_a_failure_shows_what_the_app_did(pytester: pytest.Pytester) -> None:
    scenarios(pytester, RETRIED_503)
    result = grade(pytester, starter(pytester))
    result.assert_outcomes(failed=1)
    lines = board(result)
    failure = lines.index("✗ [retries] A 503 is retried — failed (0/3)")
    assert lines[failure + 1 : failure + 4] == [
        "  why: after one 503 the user got 500",
        "  hint: Retry 5xx.",
        "  what the app did:",
    ], lines
    header, attempt, tokens = lines[failure + 4 : failure + 7]
    assert header.split() == ["#", "at", "wait", "model", "fault", "result"], lines
    # the one attempt the starter made: no wait before it, then no retry
    number, at, *rest = attempt.split()
    assert number == "1" and at.endswith("s"), attempt
    assert " ".join(rest) == "fake-large error 503 503 completed, 0 tokens (json)", attempt
    assert tokens == "    tokens billed: 0, read by nobody: 0", lines
    assert failure + 7 == len(lines) or not lines[failure + 7].strip(), lines

"""One vocabulary: `faultfirst grade`, `play`, `fake-llm` and the pytest plugin name a setting
alike (``--WORD``, ``--faultfirst-WORD`` in pytest) and give it the same default; the old names
still work for a release, hidden, and say their new names."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from front_ends import COMMANDS, command, pytest_words, visible_options
from harness import cli, plugin_options, vocabulary
from harness.grading.tasks import parse_tasks
from harness.hosting import sandbox
from harness.hosting.sandbox import Limits
from harness.submissions import grader

pytest_plugins = ["pytester"]

# Settings only pytest has: `faultfirst grade` always runs apps in a child process, on its own
# Python or a submission's virtualenv, and names a submission by its file or folder.
PYTEST_ONLY = {"app-mode", "app-python", "submission-label"}


def test_every_front_end_gives_a_setting_the_same_default(pytester: pytest.Pytester) -> None:
    """Read from each front end's parser, with nothing given."""
    grade, play, fake = (cli._parser([name]).parse_args([name]) for name in COMMANDS)
    in_pytest = plugin_options.read(pytester.parseconfig())
    graded = grader.Options()
    assert grade.seed == play.seed == fake.seed == in_pytest.seed == graded.seed == 0
    assert parse_tasks(grade.tasks) == parse_tasks(graded.tasks) == in_pytest.tasks
    assert grade.scenario_timeout == in_pytest.scenario_timeout == graded.scenario_timeout == 20
    assert grade.run_timeout == in_pytest.run_timeout == graded.run_timeout == 600
    assert grade.concurrency == in_pytest.concurrency == "auto"
    assert grade.isolation == in_pytest.isolation == graded.isolation == "auto"
    limits = Limits(**{option.field: getattr(grade, option.flag) for option in sandbox.OPTIONS})
    assert limits == in_pytest.limits == graded.limits
    assert play.profile == fake.profile == "realistic"
    assert str(play.app) == in_pytest.submission == "."
    assert play.port == fake.port == 0


def test_a_setting_has_one_word_on_every_front_end() -> None:
    on_commands = {
        option.removeprefix("--")
        for name in COMMANDS
        for option in visible_options(command(name))
    }
    assert pytest_words() - on_commands == PYTEST_ONLY
    assert "junitxml" in on_commands  # pytest's own name for it, the same on `grade`


@pytest.mark.parametrize("name", COMMANDS)
def test_help_gives_every_option_its_default(name: str) -> None:
    for option, action in visible_options(command(name)).items():
        assert action.help and "(default: " in action.help, option


# -- the old names ---------------------------------------------------------------------------------

OLD = [
    ("grade", "--junit", ["out.xml"]),
    ("play", "--app", ["elsewhere"]),
]


def test_every_old_name_of_the_commands_is_tried() -> None:
    tried = {old: name for name, old, _ in OLD}
    assert set(tried) == set(vocabulary.OLD_GRADE_NAMES) | set(vocabulary.OLD_PLAY_NAMES)


@pytest.mark.parametrize(("name", "old", "value"), OLD)
def test_an_old_name_sets_what_its_new_name_sets(name: str, old: str, value: list[str]) -> None:
    new = {**vocabulary.OLD_GRADE_NAMES, **vocabulary.OLD_PLAY_NAMES}[old]
    by_old = cli._parser([name]).parse_args([name, old, *value])
    by_new = cli._parser([name]).parse_args([name, new, *value])
    assert vocabulary.used_old_names(by_old) == {old: new}
    assert vocabulary.used_old_names(by_new) == {}
    del by_old.old_names_used
    assert by_old == by_new
    assert by_new != cli._parser([name]).parse_args([name])
    assert old not in visible_options(command(name))


def test_an_old_name_says_its_new_name_once(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["grade", "--junit", "a.xml", "--junit", "b.xml", "--tasks", "nonsense"])
    assert status == 2  # the unknown task; the old name itself is fine
    assert capsys.readouterr().err.splitlines() == [
        "faultfirst: --junit is now --junitxml; the old name goes in the next release",
        "faultfirst grade: unknown task nonsense; choose from streaming, cancellation, retries, "
        "fallback, metadata, timeouts, jobs, structured, or all",
    ]


# -- `faultfirst grade` and its grading run ---------------------------------------------------------


def test_the_grading_run_is_given_the_new_names_and_the_plugin_reads_them(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    options = grader.Options(
        tasks="retries,jobs",
        seed=4,
        scenario_timeout=5,
        run_timeout=None,
        limits=Limits(memory_mb=512, cpu_seconds=60, processes=8),
        isolation="none",
        concurrency=3,
    )
    submission = types.SimpleNamespace(folder=tmp_path / "alice")
    run = grader._command(
        submission, tmp_path, options, "/usr/bin/python3", ("json", "md"), "alice"  # type: ignore[arg-type]
    )
    names = {argument.split("=")[0] for argument in run if argument.startswith("--")}
    assert not names & set(vocabulary.OLD_PYTEST_NAMES)
    ours = [argument for argument in run if argument.startswith(vocabulary.PYTEST_PREFIX)]
    settings = plugin_options.read(pytester.parseconfig(*ours))
    assert settings == plugin_options.Settings(
        submission=str(tmp_path / "alice"),
        tasks=("retries", "jobs"),
        seed=4,
        app_mode="subprocess",
        isolation="none",
        concurrency=3,
        scenario_timeout=5,
        run_timeout=None,
        limits=options.limits,
        app_python="/usr/bin/python3",
        submission_label="alice",
        grade_fd_reports=("json", "md"),
    )

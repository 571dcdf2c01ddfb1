"""The pytest plugin as a user meets it: options in --help, configuration keys, the old option
names, fixtures that reset between tests."""

import re

import pytest

from harness import plugin_options, vocabulary
from harness.hosting.sandbox import Limits

pytest_plugins = ["pytester"]


def help_blocks(text: str) -> dict[str, str]:
    """``pytest --help``'s faultfirst options: option -> its help, joined into one line."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if match := re.match(r"  (--faultfirst-[a-z-]+)", line):
            current = match[1]
            blocks[current] = line[match.end() :]
        elif current is not None and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return {option: " ".join(help.split()) for option, help in blocks.items()}


def test_options_are_documented_in_help_with_their_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["faultfirst: grade LLM apps under injected faults:"])
    blocks = help_blocks(result.stdout.str())
    visible = {"submission", "tasks", "seed", "app-mode", "isolation", "concurrency",
               "scenario-timeout", "run-timeout", "submission-label", "json", "md", "html",
               "gradescope", "memory", "cpu", "processes", "app-python"}  # fmt: skip
    assert set(blocks) == {vocabulary.pytest_option(word) for word in visible}
    for option, help in blocks.items():
        assert "(default: " in help, option
    assert "(default: 0)" in blocks["--faultfirst-seed"]
    assert "(default: 20)" in blocks["--faultfirst-scenario-timeout"]
    assert "(default: 600)" in blocks["--faultfirst-run-timeout"]
    assert "ini: faultfirst_tasks" in blocks["--faultfirst-tasks"]
    text = result.stdout.str()
    for old in vocabulary.OLD_PYTEST_NAMES:
        assert not re.search(rf"^\s+{old}\b", text, re.MULTILINE), f"{old} is shown"
    for internal in ("grade-fd", "isolated-network"):
        assert vocabulary.pytest_option(internal) not in text  # only `faultfirst grade` uses it
    for key in ("faultfirst_tasks", "faultfirst_seed", "faultfirst_scenario_timeout"):
        assert re.search(rf"^  {key} \(string\):", text, re.MULTILINE), key


# -- configuration keys: the command line wins over the file, the file over the default ----------


def test_settings_come_from_the_command_line_then_the_ini_file_then_the_defaults(
    pytester: pytest.Pytester,
) -> None:
    defaults = plugin_options.read(pytester.parseconfig())
    assert defaults == plugin_options.Settings()
    pytester.makeini(
        """
        [pytest]
        faultfirst_tasks = retries,jobs
        faultfirst_seed = 5
        faultfirst_scenario_timeout = 7.5
        faultfirst_concurrency = 3
        faultfirst_isolation = none
        faultfirst_memory = 512
        """
    )
    from_ini = plugin_options.read(pytester.parseconfig())
    assert from_ini.tasks == ("retries", "jobs")
    assert (from_ini.seed, from_ini.scenario_timeout, from_ini.concurrency) == (5, 7.5, 3)
    assert from_ini.isolation == "none"
    assert from_ini.limits == Limits(memory_mb=512)
    assert from_ini.run_timeout == vocabulary.RUN_TIMEOUT  # not in the file: the default
    given = plugin_options.read(
        pytester.parseconfig("--faultfirst-seed", "9", "--faultfirst-tasks", "all")
    )
    assert given.seed == 9 and len(given.tasks) == 8  # the command line wins
    assert given.scenario_timeout == 7.5  # and the file still counts for the rest


def test_pyproject_toml_holds_the_settings_too(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        faultfirst_tasks = "structured"
        faultfirst_seed = 3
        faultfirst_run_timeout = 0
        """
    )
    settings = plugin_options.read(pytester.parseconfig())
    assert (settings.tasks, settings.seed, settings.run_timeout) == (("structured",), 3, None)


def test_a_wrong_value_in_the_ini_file_is_one_line_naming_the_key(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nfaultfirst_concurrency = 0\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: faultfirst_concurrency in *tox.ini: a whole number of 1 or more, or auto, not '0'"]
    )


def test_the_run_timeout_of_0_is_no_limit_and_bad_timeouts_are_refused(
    pytester: pytest.Pytester,
) -> None:
    assert plugin_options.read(
        pytester.parseconfig("--faultfirst-run-timeout", "0")
    ).run_timeout is None
    for option, value in (("scenario-timeout", "0"), ("run-timeout", "-1"), ("seed", "x")):
        with pytest.raises(pytest.UsageError, match=vocabulary.pytest_option(option)):
            plugin_options.read(pytester.parseconfig(vocabulary.pytest_option(option), value))


def test_the_run_timeout_is_for_scenarios_not_for_other_tests(pytester: pytest.Pytester) -> None:
    """The plugin is in every pytest session of the virtualenv: a suite of ordinary tests that
    runs longer than the run's time limit must not be stopped by it."""
    pytester.makepyfile("import time\n\ndef test_slow():\n    time.sleep(1.0)\n")
    result = pytester.runpytest("--faultfirst-run-timeout", "0.2", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


# -- the old names, for one release ----------------------------------------------------------------

# A value for each renamed option, that the plugin accepts.
OLD_VALUES = {
    "--fault-seed": "7",
    "--submission": "elsewhere",
    "--tasks": "jobs",
    "--app-mode": "thread",
    "--app-isolation": "none",
    "--concurrency": "3",
    "--scenario-timeout": "4",
    "--run-timeout": "50",
    "--app-memory": "256",
    "--app-cpu": "30",
    "--app-processes": "8",
    "--app-python": "/usr/bin/python3",
    "--submission-label": "alice",
    "--grade-json": "g.json",
    "--grade-md": "g.md",
    "--grade-html": "g.html",
    "--grade-gradescope": "results.json",
}


def test_every_old_name_has_a_value_here() -> None:
    assert set(OLD_VALUES) == set(vocabulary.OLD_PYTEST_NAMES)


@pytest.mark.parametrize("old", sorted(vocabulary.OLD_PYTEST_NAMES))
def test_an_old_name_sets_what_its_new_name_sets(pytester: pytest.Pytester, old: str) -> None:
    new = vocabulary.OLD_PYTEST_NAMES[old]
    by_old = pytester.parseconfig(old, OLD_VALUES[old])
    by_new = pytester.parseconfig(new, OLD_VALUES[old])
    assert plugin_options.read(by_old) == plugin_options.read(by_new)
    assert plugin_options.read(by_old) != plugin_options.read(pytester.parseconfig())
    assert plugin_options.old_names_used(by_old) == {old: new}
    assert plugin_options.old_names_used(by_new) == {}


def test_old_names_say_their_new_names_once_a_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(
        "--fault-seed", "1", "--tasks", "retries", "--fault-seed", "2", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)
    notices = [line for line in result.errlines if " is now " in line]
    assert sorted(notices) == [  # one line for each old name, though --fault-seed came twice
        "faultfirst: --fault-seed is now --faultfirst-seed; the old name goes in the next release",
        "faultfirst: --tasks is now --faultfirst-tasks; the old name goes in the next release",
    ]


def test_the_new_names_say_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--faultfirst-seed", "1", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert not [line for line in result.errlines if " is now " in line]


# -- fixtures ---------------------------------------------------------------------------------------


def test_fake_llm_is_fresh_in_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        from harness.fake_llm import faults as f

        BODY = {"model": "fake-large", "messages": [{"role": "user", "content": "hi"}]}

        def test_first(fake_llm):
            fake_llm.script(f.error(503), f.error(503))
            assert httpx.post(fake_llm.base_url + "/chat/completions", json=BODY).status_code == 503
            assert len(fake_llm.calls) == 1

        def test_second_sees_no_leftovers(fake_llm):
            assert fake_llm.calls == []
            assert httpx.post(fake_llm.base_url + "/chat/completions", json=BODY).status_code == 200
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_seed_changes_the_answers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_answer(fake_llm):
            body = {"model": "fake-large", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(fake_llm.base_url + "/chat/completions", json=body).json()
            print("ANSWER:", reply["choices"][0]["message"]["content"])
        """
    )
    answers = []
    for seed in ("1", "1", "2"):
        result = pytester.runpytest("-s", "--faultfirst-seed", seed)
        result.assert_outcomes(passed=1)
        answers.append([line for line in result.outlines if "ANSWER:" in line])
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]

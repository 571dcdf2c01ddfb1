"""The pytest plugin as a user meets it: options in --help, fixtures that reset between tests."""

import pytest

pytest_plugins = ["pytester"]


def test_options_are_documented_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*faultfirst*", "*--fault-seed=N*seed for the fake provider*"])


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


def test_fault_seed_changes_the_answers(pytester: pytest.Pytester) -> None:
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
        result = pytester.runpytest("-s", "--fault-seed", seed)
        result.assert_outcomes(passed=1)
        answers.append([line for line in result.outlines if "ANSWER:" in line])
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]

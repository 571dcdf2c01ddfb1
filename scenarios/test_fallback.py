"""Fallback: when the primary model is down, the small one answers, and says so."""

from __future__ import annotations

import time

import pytest

from harness.app_client import AppClient
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import BREAKER, FAST_RETRIES, LATE, RELAY


def retries_then_fallback(settings: AppSettings) -> float:
    """How long a request may take to reach the fallback (and, streamed, to end there).

    A correct app gets there after the primary's backoffs, hundredths of a second with
    FAST_RETRIES; one that keeps retrying the primary takes until REQUEST_DEADLINE. Half the
    deadline sits far from both, so a loaded machine cannot flip the result (a 0.5 s margin
    once failed a stream on a machine running five grades); and never less than LATE past the
    backoffs."""
    backoffs = sum(settings.backoff(retry) for retry in range(settings.max_attempts - 1))
    return max(backoffs + LATE, settings.request_deadline / 2)


pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="fallback",
    points=3,
    title="The fallback model answers when the primary is down, and the answer says so",
    hint="When PRIMARY_MODEL keeps failing, ask FALLBACK_MODEL as soon as its last attempt has "
    'failed (no backoff after it), and answer with "model": the fallback\'s name and '
    '"fallback": true.',
    checks=["fallback.unavailable", "fallback.says_so"],
)
# Two attempts with a long backoff between them: an app that also waits after the last one
# reaches the fallback a second backoff later (0.9-1.2 s), far past RELAY.
@pytest.mark.app_settings(MAX_ATTEMPTS="2", RETRY_BASE_DELAY="0.6", RETRY_MAX_DELAY="1.2")
async def test_the_fallback_answers_when_the_primary_is_down(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    reply = await client.ask(question)
    allowed = retries_then_fallback(app_settings)
    assert reply.took <= allowed, (
        f"the fallback's answer came after {reply.took:.2f}s (allowed: {allowed:.2f}s): the "
        f"primary was tried for longer than MAX_ATTEMPTS={app_settings.max_attempts} allows"
    )
    fallback_calls = fake_llm.ledger.calls(app_settings.fallback_model)
    assert fallback_calls, (
        f"the primary model answered 503 to every attempt and the app never asked "
        f"FALLBACK_MODEL ({app_settings.fallback_model}); the user got {reply.status}"
    )
    failures = [c.ended_at for c in fake_llm.ledger.calls(app_settings.primary_model) if c.ended_at]
    waited = fallback_calls[0].received_at - max(failures, default=fallback_calls[0].received_at)
    assert waited <= RELAY, (
        f"the primary's last attempt failed, and the app asked the fallback {waited:.2f}s later "
        f"(allowed: {RELAY}s): nothing is left to wait for after the last attempt"
    )
    assert reply.answer() == fallback_calls[-1].text, "the answer was not the fallback model's"
    metadata = reply.json()
    assert metadata.get("model") == app_settings.fallback_model, (
        f"the answer came from {app_settings.fallback_model} but its metadata says "
        f"model={metadata.get('model')!r}"
    )
    assert metadata.get("fallback") is True, (
        f'an answer from the fallback model should say "fallback": true, not '
        f"{metadata.get('fallback')!r}"
    )


@pytest.mark.scenario(
    task="fallback",
    points=2,
    title="A rejected request is not sent to the fallback model",
    hint="A 400 (or 401, 403, 404, 422) means the request is wrong; the fallback model would "
    "reject it too. Fall back only when the primary is unavailable.",
    checks=["fallback.not_rejected"],
)
async def test_rejected_requests_do_not_fall_back(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    asked = {status: f"{question} [{status}]" for status in (400, 401, 403, 404, 422)}
    for status, text in asked.items():
        fake_llm.always(f.error(status), model=app_settings.primary_model, prompt_contains=text)
    await client.ask_many(asked.values())
    fallen_back = [
        status
        for status, text in asked.items()
        if any(text in call.prompt for call in fake_llm.ledger.calls(app_settings.fallback_model))
    ]
    assert not fallen_back, (
        f"the primary model rejected the request ({', '.join(map(str, fallen_back))}) and the "
        "app asked the fallback model anyway"
    )


@pytest.mark.scenario(
    task="fallback",
    points=2,
    title="A stream falls back too, and its `done` event names the model",
    hint='The stream gets the same fallback as POST /api/answer; its `done` event says "model" '
    'and "fallback": true.',
    checks=["fallback.unavailable", "fallback.says_so"],
    needs=["streaming"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_stream_falls_back_too(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    started = time.monotonic()
    reply = await client.stream(question)
    took = time.monotonic() - started
    allowed = retries_then_fallback(app_settings)
    assert took <= allowed, (
        f"the stream from the fallback ended after {took:.2f}s (allowed: {allowed:.2f}s): the "
        f"primary was tried for longer than MAX_ATTEMPTS={app_settings.max_attempts} allows"
    )
    reply.expect_events()
    done = reply.last("done").data
    fallback_calls = fake_llm.ledger.calls(app_settings.fallback_model)
    assert fallback_calls, "the primary model was down and the stream never tried the fallback"
    # Compared without whitespace: the text is checked by the streaming scenarios, the model here.
    assert "".join(reply.text.split()) == "".join(fallback_calls[-1].text.split()), (
        "the streamed text was not the fallback model's answer"
    )
    assert isinstance(done, dict) and done.get("model") == app_settings.fallback_model, (
        f"the done event should name {app_settings.fallback_model}; it carried {done!r}"
    )
    assert done.get("fallback") is True, f'the done event should say "fallback": true: {done!r}'


@pytest.mark.scenario(
    task="fallback",
    points=1,
    bonus=True,
    title="Bonus: a primary that keeps failing is left alone for a while (circuit breaker)",
    hint="Count the primary's failed calls in a row (a success starts the count over); once there "
    "are BREAKER_FAILURES of them, send requests straight to the fallback for BREAKER_COOL_DOWN "
    "seconds instead of paying for attempts that will fail.",
    checks=["fallback.breaker"],
)
# One attempt a request, so that each request is one more call in the breaker's count.
@pytest.mark.app_settings(**{**BREAKER, "MAX_ATTEMPTS": "1"})
async def test_a_failing_primary_is_left_alone(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    primary, failures = app_settings.primary_model, app_settings.breaker_failures
    fake_llm.always(f.error(503), model=primary)  # the primary fails every call...
    fake_llm.script(f.ok(), model=primary, prompt_contains=f"{question} #2")  # ...but this one
    # Two failures, an answer, then BREAKER_FAILURES failures: the breaker stays closed until the
    # last of those, since the answer started the count over.
    asks = 3 + failures
    for number in range(asks):
        before = len(fake_llm.ledger.calls(primary))
        await client.ask(f"{question} #{number}")
        assert len(fake_llm.ledger.calls(primary)) > before, (
            f"request #{number} did not call the primary, which had failed twice, answered, then "
            f"failed again, never BREAKER_FAILURES={failures} times in a row: the breaker should "
            "open only after that many failures in a row, a success starting the count over"
        )
    opened = fake_llm.ledger.calls(primary)[-1].received_at  # the breaker opened after this
    await client.ask(f"{question} #{asks}")
    early = [
        call
        for call in fake_llm.ledger.calls(primary)
        if opened < call.received_at < opened + app_settings.breaker_cool_down
    ]
    assert not early, (
        f"the primary failed {failures} calls in a row (BREAKER_FAILURES), and the next request "
        f"still called it within BREAKER_COOL_DOWN ({app_settings.breaker_cool_down:g}s): it "
        "should go straight to the fallback"
    )

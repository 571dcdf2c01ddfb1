"""Fallback, hidden: not when the primary recovers; at once when waiting would blow the
deadline."""

from __future__ import annotations

import time

import anyio
import pytest

from harness.app_client import AppClient
from harness.checks.deadlines import Span
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.launcher import AppSettings
from harness.timing import BREAKER, FAST_RETRIES, LATE

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="fallback",
    points=2,
    title="No fallback when a retry of the primary succeeds",
    hint="The fallback model is for a primary that stays down: one passing failure is retried "
    "on the primary.",
    checks=["fallback.not_recovering", "fallback.says_so"],
)
async def test_no_fallback_when_the_primary_recovers(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.script(f.error(503), model=app_settings.primary_model)  # then it answers
    reply = await client.ask(question)
    reply.answer()
    metadata = reply.json()
    used = len(fake_llm.ledger.calls(app_settings.fallback_model))
    assert used == 0, (
        f"the primary failed once, then would have answered; the app asked the fallback {used} time(s)"
    )
    assert metadata.get("model") == app_settings.primary_model, (
        f"the primary answered, but the metadata says model={metadata.get('model')!r}"
    )
    assert metadata.get("fallback", False) is False, (
        f'an answer from the primary should not say "fallback": {metadata.get("fallback")!r}'
    )


@pytest.mark.scenario(
    task="fallback",
    points=2,
    title="The fallback answers at once when the primary asks for a wait past the deadline",
    hint="A 429 with Retry-After longer than the time left before REQUEST_DEADLINE means the "
    "primary is unavailable for this request: go to the fallback instead of waiting.",
    checks=["fallback.no_time", "retries.deadline"],
)
async def test_fallback_rather_than_wait_past_the_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(429, retry_after=10), model=app_settings.primary_model)
    started = time.monotonic()
    reply = await client.ask(question)
    span = Span.of(started, fake_llm)
    reply.answer()
    assert reply.json().get("model") == app_settings.fallback_model, (
        f"the answer should come from {app_settings.fallback_model}"
    )
    # The app may try the primary again after its own backoff; it may not wait the 10 s asked
    # for (REQUEST_DEADLINE is 4 s). The time counts from the app's first call, not the question:
    # a loaded machine may take a while to bring the question to the app.
    allowed = app_settings.backoff(0) + app_settings.backoff(1) + LATE
    assert span.since_first_call <= allowed, (
        f"the primary asked for a 10 s wait and the app answered {span.since_first_call:.2f}s "
        f"after its first call (allowed: {allowed:.2f}s); REQUEST_DEADLINE is "
        f"{app_settings.request_deadline:g}s"
    )


@pytest.mark.scenario(
    task="fallback",
    points=1,
    bonus=True,
    title="Bonus: after its cool-down the primary is tried again, and used once it answers",
    hint="An open circuit breaker is not for ever: once BREAKER_COOL_DOWN has passed, let a "
    "request try the primary again, and when it answers, close the breaker and go back to it.",
    checks=["fallback.breaker"],
)
# A shorter cool-down than BREAKER's: nothing here needs it to outlast a moment between requests.
@pytest.mark.app_settings(**{**BREAKER, "BREAKER_COOL_DOWN": "0.5"})
async def test_the_breaker_closes_once_the_primary_is_back(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    primary = app_settings.primary_model
    fake_llm.always(f.error(503), model=primary)
    await client.ask(f"{question} #1")  # MAX_ATTEMPTS failed calls: the breaker opens
    failed = fake_llm.ledger.calls(primary)
    assert failed, "the app never called the primary model"
    fake_llm.reset()  # the primary is back
    # The cool-down runs from the app's last failure, which came after the fake saw that call.
    back_at = failed[-1].received_at + app_settings.breaker_cool_down + LATE
    await anyio.sleep(max(0.0, back_at - time.monotonic()))
    for number in (2, 3):
        reply = await client.ask(f"{question} #{number}")
        model = reply.json().get("model")
        assert fake_llm.ledger.calls(primary) and model == primary, (
            f"BREAKER_COOL_DOWN ({app_settings.breaker_cool_down:g}s) had passed and the primary "
            f"was answering again, but request #{number} after it was answered by {model!r}: "
            "after the cool-down, try the primary again, and go back to it once it answers"
        )


@pytest.mark.scenario(
    task="fallback",
    points=1,
    title="The primary and the fallback are the models the settings name",
    hint="Read PRIMARY_MODEL and FALLBACK_MODEL from the settings; never write a model's name "
    "in the code: the grader may swap them.",
    checks=["settings.env", "fallback.unavailable"],
)
@pytest.mark.app_settings(PRIMARY_MODEL="fake-small", FALLBACK_MODEL="fake-large", **FAST_RETRIES)
async def test_the_models_are_the_ones_the_settings_name(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    reply = await client.ask(question)
    first = fake_llm.calls[0].model if fake_llm.calls else None
    assert first == app_settings.primary_model, (
        f"PRIMARY_MODEL is {app_settings.primary_model}, but the app first asked {first}"
    )
    reply.answer()
    model = reply.json().get("model")
    assert model == app_settings.fallback_model, (
        f"with PRIMARY_MODEL={app_settings.primary_model} down, the answer should come from "
        f"FALLBACK_MODEL={app_settings.fallback_model}, not {model!r}"
    )

"""Retries: failures that pass never reach the user; failures that won't are not retried."""

from __future__ import annotations

import pytest

from harness.app_client import AppClient
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import CLOCK_SLACK, FAST_RETRIES, LATE

pytestmark = pytest.mark.anyio

PASSING_STATUSES = (408, 409, 429, 500, 502, 503, 504, 529)
REJECTED_STATUSES = (400, 401, 403, 404, 422)


@pytest.mark.scenario(
    task="retries",
    points=3,
    title="Overload, rate limits and server errors are retried",
    hint="Retry 408, 409, 429 and every 5xx (529 included): one such failure followed by "
    "success must still give the user the answer.",
    checks=["retries.statuses"],
)
async def test_passing_failures_are_retried(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    asked = {status: f"{question} [{status}]" for status in PASSING_STATUSES}
    for status, text in asked.items():
        fake_llm.script(f.error(status), prompt_contains=text)  # then it answers
    replies = await client.ask_many(asked.values())
    problems = []
    for status, text in asked.items():
        calls = [call for call in fake_llm.calls if text in call.prompt]
        reply = replies[text]
        if reply.status != 200:
            problems.append(f"after one {status} the user got {reply.status} ({len(calls)} call)")
        elif len(calls) != 2 or reply.json().get("answer") != calls[-1].text:
            problems.append(f"after one {status} the app made {len(calls)} calls, not 2")
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="A request the provider rejects is not retried, and the user is told",
    hint="400, 401, 403, 404 and 422 mean the request itself is wrong: don't retry it; answer "
    'the user with an error status and a JSON body such as {"code", "message", "retryable"}.',
    checks=["retries.rejected"],
)
async def test_rejected_requests_are_not_retried(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    asked = {status: f"{question} [{status}]" for status in REJECTED_STATUSES}
    for status, text in asked.items():
        fake_llm.always(f.error(status), prompt_contains=text)
    replies = await client.ask_many(asked.values())
    problems = []
    for status, text in asked.items():
        models = [call.model for call in fake_llm.calls if text in call.prompt]
        tries = max((models.count(model) for model in models), default=0)
        if tries != 1:
            problems.append(f"a {status} was tried {tries} times on one model")
            continue
        try:
            replies[text].error()
        except AssertionError as error:
            problems.append(f"after a {status}: {error}")
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Retry-After is honoured",
    hint="When a 429 carries Retry-After (seconds, or an HTTP date) or retry-after-ms, wait that "
    "long before the next attempt instead of your own backoff.",
    checks=["retries.retry_after"],
)
async def test_retry_after_is_honoured(client: AppClient, fake_llm: FakeLLM, question: str) -> None:
    fake_llm.script(f.error(429, retry_after=0.2), prompt_contains=question)
    reply = await client.ask(question)
    reply.answer()
    calls = fake_llm.calls
    assert len(calls) >= 2, "the 429 was not retried"
    waited = calls[1].received_at - calls[0].received_at
    # Lower bound: the app reads the 429 after the fake received its request, then waits 0.2 s;
    # its own first backoff would be 0.1 s at most.
    assert 0.2 - CLOCK_SLACK <= waited <= 0.2 + LATE, (
        f"the second attempt came {waited * 1000:.0f} ms after a 429 with Retry-After: 0.2"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="The wait between attempts doubles",
    hint="Wait min(RETRY_BASE_DELAY * 2**n, RETRY_MAX_DELAY) before retry n+1 (n from 0), shrunk "
    "by a random jitter of up to a quarter; read both settings, don't hard-code them.",
    checks=["retries.backoff", "settings.env"],
)
# Waits of 0.1 and 0.2 s; the cap is far above them, so an app that hard-codes the OpenAI SDK's
# 0.5 s base waits at least 0.75 s before its third attempt, past 0.2 s + LATE.
@pytest.mark.app_settings(MAX_ATTEMPTS="3", RETRY_BASE_DELAY="0.1", RETRY_MAX_DELAY="2.0")
async def test_backoff_doubles(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)  # the fallback answers
    await client.ask(question)
    calls = fake_llm.ledger.calls(app_settings.primary_model)
    attempts = app_settings.max_attempts
    assert len(calls) >= attempts, (
        f"with MAX_ATTEMPTS={attempts}, the app tried a failing model only {len(calls)} times"
    )
    for retry in range(attempts - 1):
        failed_at = calls[retry].headers_at  # the 503 leaves: the wait can start
        assert failed_at is not None, f"attempt {retry + 1} has no response in the ledger"
        waited = calls[retry + 1].received_at - failed_at
        backoff = app_settings.backoff(retry)
        # Jitter shrinks a wait by a quarter at most, and the app reads the 503 after it leaves:
        # no correct wait is shorter. An app that retries at once shows only a loaded machine's
        # lag: 21 ms at most in 54 tries on two cores with five grades and a spinner beside it,
        # far below the 75 ms bound of the first wait.
        assert 0.75 * backoff - CLOCK_SLACK <= waited <= backoff + LATE, (
            f"attempt {retry + 2} came {waited * 1000:.0f} ms after attempt {retry + 1} failed; "
            f"with RETRY_BASE_DELAY={app_settings.retry_base_delay} it should wait about "
            f"{backoff * 1000:.0f} ms (75-100% of it with jitter)"
        )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="No wait between attempts is longer than RETRY_MAX_DELAY",
    hint="Cap every backoff: min(RETRY_BASE_DELAY * 2**n, RETRY_MAX_DELAY). Without the cap, the "
    "wait doubles without end: 0.1, 0.2, 0.4, 0.8, 1.6 s...",
    checks=["retries.cap", "settings.env"],
)
@pytest.mark.app_settings(MAX_ATTEMPTS="7", RETRY_BASE_DELAY="0.05", RETRY_MAX_DELAY="0.05")
async def test_backoff_is_capped(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    # With the cap, every wait is 0.05 s at most (0.3 s in all); without it the last two are 0.8
    # and 1.6 s, less a quarter of jitter: far past the cap and LATE.
    fake_llm.always(f.error(503), model=app_settings.primary_model)  # the fallback answers
    await client.ask(question)
    calls = fake_llm.ledger.calls(app_settings.primary_model)
    waits = [later.received_at - earlier.received_at for earlier, later in zip(calls, calls[1:])]
    cap = app_settings.retry_max_delay
    assert waits, "a 503 was not retried"
    assert max(waits) <= cap + LATE, (
        f"the app waited {max(waits):.2f}s between two attempts; RETRY_MAX_DELAY is {cap:g}s "
        f"(waits: {', '.join(f'{wait:.2f}s' for wait in waits)})"
    )


@pytest.mark.scenario(
    task="retries",
    points=3,
    title="A stream is never restarted once the user has read part of it",
    hint="Retry a stream only until its first token has reached the user; after that, end it "
    "with an `error` event instead of starting the answer again.",
    checks=["retries.not_after_tokens"],
    needs=["streaming"],
)
async def test_nothing_is_retried_once_tokens_were_sent(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.reset(after_tokens=3), prompt_contains=question)  # then it would answer
    reply = await client.stream(question)
    reply.expect_events()
    calls = await fake_llm.ledger.settled()
    assert len(calls) == 1, (
        f"the connection broke after three tokens had reached the user, and the app asked the "
        f"model again ({len(calls)} calls): the user read {reply.text!r}"
    )
    assert len(reply.text) <= len(calls[0].text), (
        f"the user read {reply.text!r}, more than the model wrote before it broke "
        f"({calls[0].text!r})"
    )
    assert reply.names[-1:] != ["done"], (
        "the answer broke off after three tokens, but the stream ended with `done` as if it "
        "were complete"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Attempts are bounded, and the user gets an error when all fail",
    hint="Make MAX_ATTEMPTS attempts on each model (the first one included: no more, no fewer), "
    "then answer with an error status and a JSON message, never an empty 200.",
    checks=["retries.attempts"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_attempts_are_bounded(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503))  # every model, every time
    reply = await client.ask(question)
    calls = fake_llm.calls
    for model in {call.model for call in calls}:
        tries = len([call for call in calls if call.model == model])
        assert tries == app_settings.max_attempts, (
            f"the app tried {model} {tries} times; MAX_ATTEMPTS is {app_settings.max_attempts}, "
            "the attempts on each model, the first one included"
        )
    reply.error()

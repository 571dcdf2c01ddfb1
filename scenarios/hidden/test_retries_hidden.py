"""Retries, hidden: dropped connections, jitter, the deadline, retry-after-ms, a property over
generated fault schedules, answers ended for their length, a chunk that is not JSON, and other
users going on during a retry's wait."""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import statistics
import time

import anyio
import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from harness import plugin
from harness.app_client import AppClient, Reply, excerpt
from harness.checks import examples
from harness.checks.deadlines import Span, expect_by_deadline
from harness.checks.errors import ERROR_SHAPE, is_error
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import CLOCK_SLACK, FAST_RETRIES, LATE

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Dropped connections and timeouts are retried",
    hint="A reset connection, a body cut short or garbled, and a read timeout (the model stalls, "
    "or never answers, for longer than LLM_READ_TIMEOUT) are transient too: retry them like a "
    "503.",
    checks=["retries.network", "settings.env"],
)
# A read timeout three times RELAY: a correct app whose loop waits that long on a loaded machine
# times out its retry too (its timer fires before it reads what came). At 0.5 s that happened to
# five retries mutants in one determinism round run with other tests beside it.
@pytest.mark.app_settings(LLM_READ_TIMEOUT="1.5")
async def test_dropped_connections_and_timeouts_are_retried(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    faults = {
        "a reset connection": f.reset(),
        "a body cut short": f.cut(after_tokens=3),
        "a body that is not JSON": f.malformed(),
        "a stall after the headers": f.stall(),
        "no response at all": f.hang(),
    }
    asked = {what: f"{question} [{what}]" for what in faults}
    for what, text in asked.items():
        fake_llm.script(faults[what], prompt_contains=text)
    replies = await client.ask_many(asked.values())
    problems = []
    for what, text in asked.items():
        calls = [call for call in fake_llm.calls if text in call.prompt]
        if replies[text].status != 200:
            problems.append(f"after {what} the user got {replies[text].status}")
        elif len(calls) != 2 or replies[text].json().get("answer") != calls[-1].text:
            problems.append(f"after {what} the app made {len(calls)} calls, not 2")
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Clients that fail together do not all retry together (jitter)",
    hint="Shrink each backoff by a random amount (up to a quarter), so that many requests "
    "failing at once do not hit the provider again at the same instant.",
    checks=["retries.jitter", "retries.backoff"],
)
@pytest.mark.app_settings(RETRY_BASE_DELAY="1.0", RETRY_MAX_DELAY="2.0")
async def test_retries_are_jittered(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    asked = [f"{question} [user {number}]" for number in range(16)]
    # The 503s come 0.2 s after the calls, by when all 16 are in: they fail together, whatever
    # the order the app took them in. (At once, an app that blocks its loop while it waits took
    # them one at a time or not, as the machine's load had it, and passed or failed by chance.)
    for text in asked:
        fake_llm.script(f.error(503, latency=0.2), prompt_contains=text)
    await client.ask_many(asked)
    waits = []
    for text in asked:
        calls = [call for call in fake_llm.calls if text in call.prompt]
        assert len(calls) >= 2, f"a 503 was not retried ({len(calls)} call)"
        failed_at = calls[0].headers_at  # the 503 leaves: the wait can start
        assert failed_at is not None, "a 503 is missing from the ledger"
        waits.append(calls[1].received_at - failed_at)
    backoff = app_settings.backoff(0)
    # Jitter shrinks each wait by up to a quarter, so the median wait is 75-100% of the backoff,
    # plus a loaded machine's lag: 0.1 s seen at a load average of 7, and up to 0.2 s where 16
    # retries come at once and queue in the app. The upper bound is a quarter over the backoff:
    # 0.375 s of lag above the median's expected 0.875 s, and half-way to the 1.5 s of the
    # smallest wait an app that doubles one step too early could make. The lower bound is far
    # above the 0.5 s of the OpenAI SDK's own base, hard-coded, even after such a lag.
    typical = statistics.median(waits)
    assert 0.75 * backoff - CLOCK_SLACK <= typical <= 1.25 * backoff, (
        f"16 requests failed at once and waited {typical * 1000:.0f} ms on median before their "
        f"retry; with RETRY_BASE_DELAY={app_settings.retry_base_delay:g} the first backoff is "
        f"{backoff * 1000:.0f} ms, shrunk by at most a quarter"
    )
    # Without jitter, every wait is the full backoff or longer: timers are never early, and the
    # app takes a moment to read the 503. Jitter shrinks each wait by a random 0-250 ms (a
    # quarter of 1 s); a correct app fails only if the lag of a loaded machine outgrows the
    # shrink of all 16 waits: with 100 ms of lag, odds of (100/250)**16, below one in 2 million.
    # (At 0.4 s, 16 requests on two cores with a load average of 7 once lagged past all 16.)
    assert min(waits) < backoff - CLOCK_SLACK, (
        f"16 requests failed at once and every one waited the full {backoff * 1000:.0f} ms "
        f"backoff or more ({min(waits) * 1000:.0f}-{max(waits) * 1000:.0f} ms): there is no "
        "jitter, so they all came back together"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Retries stop at the request's deadline",
    hint="Give up (and answer with an error) when waiting and trying again would end after "
    "REQUEST_DEADLINE, counting every attempt and the fallback.",
    checks=["retries.deadline"],
)
@pytest.mark.app_settings(REQUEST_DEADLINE="1.0")
async def test_retries_stop_at_the_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(429, retry_after=0.6))  # every model, every time
    started = time.monotonic()
    reply = await client.ask(question)
    span = Span.of(started, fake_llm)
    expect_by_deadline(
        span,
        app_settings,
        "every model kept answering 429 with Retry-After: 0.6, and the app answered",
    )
    reply.error()


@pytest.mark.scenario(
    task="retries",
    points=1,
    title="retry-after-ms is honoured before Retry-After",
    hint="OpenAI-style providers send retry-after-ms (milliseconds); read it first, then "
    "Retry-After, and wait what they ask, even when your own backoff would be longer.",
    checks=["retries.retry_after"],
)
# A backoff far longer than the wait asked for: the asked-for wait comes first, not the longer.
@pytest.mark.app_settings(RETRY_BASE_DELAY="1.5", RETRY_MAX_DELAY="1.5")
async def test_retry_after_ms_comes_first(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.error(429, retry_after_ms=200, retry_after=2), prompt_contains=question)
    reply = await client.ask(question)
    reply.answer()
    calls = fake_llm.calls
    assert len(calls) >= 2, "the 429 was not retried"
    waited = calls[1].received_at - calls[0].received_at
    assert 0.2 - CLOCK_SLACK <= waited <= 0.2 + LATE, (
        f"the second attempt came {waited * 1000:.0f} ms after a 429 with retry-after-ms: 200 "
        "and Retry-After: 2"
    )


TRANSIENT = {
    "408": f.error(408),
    "409": f.error(409),
    "429": f.error(429),
    "429 retry-after 0.05": f.error(429, retry_after=0.05),
    "500": f.error(500),
    "502": f.error(502),
    "503": f.error(503),
    "504": f.error(504),
    "529": f.error(529),
    "reset": f.reset(),
    "cut short": f.cut(after_tokens=2),
}


@pytest.mark.scenario(
    task="retries",
    points=3,
    title="Any few passing failures before success still give the answer",
    hint="Whatever mix of transient failures comes first (statuses, resets, bodies cut short), "
    "as long as there are fewer than MAX_ATTEMPTS of them the user gets the model's answer.",
    checks=["retries.statuses", "retries.network", "retries.attempts"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
def test_any_few_passing_failures_still_give_the_answer(
    client: AppClient,
    fake_llm: FakeLLM,
    question: str,
    app_settings: AppSettings,
    pytestconfig: pytest.Config,
) -> None:
    seed = plugin.settings(pytestconfig).seed
    most = app_settings.max_attempts - 1
    numbers = itertools.count()

    @hypothesis.settings(max_examples=12, deadline=None, database=None, print_blob=False)
    @hypothesis.seed(seed)
    @hypothesis.given(st.lists(st.sampled_from(sorted(TRANSIENT)), max_size=most))
    def schedule_then_answer(schedule: list[str]) -> None:
        text = f"{question} #{next(numbers)}"
        fake_llm.script(*(TRANSIENT[name] for name in schedule), prompt_contains=text)
        with client.sync_http() as http:
            response = http.post("/api/answer", json={"question": text})
        reply = Reply(response.status_code, response.headers, response.text, 0.0)
        calls = [call for call in fake_llm.calls if text in call.prompt]
        where = f"with the faults {schedule} before the answer (replay with --seed {seed})"
        assert reply.status == 200, f"{where}, the user got {reply.status}: {reply.text[:120]!r}"
        assert len(calls) == len(schedule) + 1, f"{where}, the app made {len(calls)} calls"
        assert reply.answer() == calls[-1].text, f"{where}, the answer was not the model's"

    with examples.seed_only():
        schedule_then_answer()


@pytest.mark.scenario(
    task="retries",
    points=1,
    title="An answer the model ended for its length is delivered, not retried",
    hint='An answer with finish_reason "length" is complete as far as the model goes: send it as '
    "it is (POST /api/answer's reply, or the stream's tokens and `done`); asking again would "
    "only pay for the same answer twice.",
    checks=["retries.length"],
    needs=["streaming"],
)
async def test_an_answer_ended_for_its_length_is_delivered(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    asked, streamed = f"{question} [asked]", f"{question} [streamed]"
    for text in (asked, streamed):
        fake_llm.script(f.length(after_tokens=6), prompt_contains=text)  # then it would answer
    reply = await client.ask(asked)
    stream = await client.stream(streamed)
    calls = {text: [c for c in fake_llm.calls if text in c.prompt] for text in (asked, streamed)}
    problems = [
        f"{'POST /api/answer' if text == asked else 'the stream'} made {len(made)} calls"
        for text, made in calls.items()
        if len(made) != 1
    ]
    assert not problems, (
        'the model ended its answer for its length (finish_reason "length"), and '
        f"{', '.join(problems)}: that answer should be sent as it is, not asked again"
    )
    assert reply.answer() == calls[asked][0].text, "POST /api/answer's answer was not the model's"
    stream.expect_events()
    stream.last("done")
    assert stream.text == calls[streamed][0].text, (
        f"the stream's tokens spell {stream.text!r}, the model wrote {calls[streamed][0].text!r}"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="A chunk that is not JSON is skipped, or ends the stream with an error",
    hint="A stream's chunk that does not parse may be skipped (the stream goes on) or end the "
    "answer with an `error` event; never start the answer again once part of it was shown, and "
    "never leave the user waiting.",
    checks=["retries.malformed_chunk"],
    needs=["streaming"],
)
async def test_a_chunk_that_is_not_json_is_skipped_or_ends_the_stream(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    # Three tokens, a chunk that is not JSON, then the rest of the answer as usual.
    fake_llm.script(f.malformed(after_tokens=3, tokens=8), prompt_contains=question)
    reply = await client.stream(question)
    reply.expect_events()
    calls = await fake_llm.ledger.settled()
    wrote = calls[0].text
    assert len(calls) == 1, (
        f"a chunk that was not JSON came after three tokens had reached the user, and the app "
        f"asked the model again ({len(calls)} calls): the user read {reply.text!r}"
    )
    if reply.names[-1:] == ["done"]:
        assert reply.text == wrote, (
            f"the stream skipped the chunk that was not JSON and ended with `done`, but its "
            f"tokens spell {reply.text!r}, not the model's {wrote!r}"
        )
    else:
        error = reply.last("error").data
        assert is_error(error), f"the error event should carry {ERROR_SHAPE}, not {error!r}"
        assert wrote.startswith(reply.text), (
            f"the user read {reply.text!r}, which is not how the model's answer {wrote!r} begins"
        )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="A retry's wait does not hold up other users",
    hint="Wait between attempts with an async sleep (await asyncio.sleep or anyio.sleep), never "
    "time.sleep, and hold no lock across the wait: other users' requests must go on meanwhile.",
    checks=["app.responsive"],
)
async def test_a_retry_s_wait_does_not_hold_up_others(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    waiting, other = f"{question} [waiting]", f"{question} [other]"
    # 0.8 s: far longer than a question answered at once takes on a loaded machine (RELAY).
    fake_llm.script(f.error(429, retry_after=0.8), prompt_contains=waiting)  # then it answers
    tab = client.tab(waiting)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the first call")
        reply = await client.ask(other)  # someone else asks while the first one waits
        answered = time.monotonic()
        tab.close()  # what comes of the first request after its wait is other scenarios' business
    reply.answer()
    calls = [call for call in fake_llm.calls if waiting in call.prompt]
    # Whether the 429 is retried at all, or sent to the fallback at once, is other scenarios'
    # business: only a retry of the same model comes after a wait.
    retried = [call.received_at for call in calls[1:] if call.model == calls[0].model]
    assert not retried or answered < retried[0], (
        "one user's request was waiting 0.8 s to retry a 429, and another user's question, "
        "answered at once by the model, got its answer only after that wait: the wait held up "
        "the whole app"
    )


@pytest.mark.scenario(
    task="retries",
    points=1,
    title="A Retry-After given as an HTTP date is honoured",
    hint="Retry-After may be a date (`Wed, 21 Oct 2026 07:28:00 GMT`), not a number of seconds: "
    "wait until then (email.utils.parsedate_to_datetime reads it).",
    checks=["retries.retry_after"],
)
async def test_a_retry_after_date_is_honoured(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    # Dates have whole seconds: the next whole second at least 0.3 s away, so the wait is
    # 0.3-1.3 s, three times the backoff (0.1 s) at least.
    until = math.ceil(time.time() + 0.3)
    date = email.utils.formatdate(until, usegmt=True)
    fake_llm.script(f.error(429, retry_after=date), prompt_contains=question)
    reply = await client.ask(question)
    reply.answer()
    calls = fake_llm.calls
    assert len(calls) >= 2, "the 429 was not retried"
    # The fake's clock is monotonic; the date is wall-clock time: compare through the first call.
    asked_for = until - (time.time() - (time.monotonic() - calls[0].received_at))
    waited = calls[1].received_at - calls[0].received_at
    assert asked_for - CLOCK_SLACK <= waited <= asked_for + LATE, (
        f"a 429 said Retry-After: {date}, {asked_for:.2f}s after it came; the next attempt came "
        f"{waited:.2f}s after it"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="A stream retries the failures that come before its first token",
    hint="Until its first token has reached the user, a stream is retried like POST /api/answer: "
    "a 503, a reset, a stream that ends before its first token or fails in its first chunk. An "
    "empty first chunk (the provider's role chunk) is not part of the answer.",
    checks=["retries.statuses", "retries.network"],
    needs=["streaming"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_stream_retries_failures_before_its_first_token(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    faults = {
        "a 503": f.error(503),
        "a reset connection": f.reset(),
        "a stream that ended before its first token": f.cut(after_tokens=0),
        "an error in the stream's first chunk": f.error(500, after_tokens=0),
    }
    problems = []
    for what, fault in faults.items():
        text = f"{question} [{what}]"
        fake_llm.script(fault, prompt_contains=text)  # then it answers
        reply = await client.stream(text)
        calls = [call for call in fake_llm.calls if text in call.prompt]
        if reply.names[-1:] != ["done"] or len(calls) != 2 or reply.text != calls[-1].text:
            problems.append(
                f"after {what}, the app made {len(calls)} call(s) and the stream ended with "
                f"{reply.names[-1:] or reply.status}, the user reading {reply.text!r}"
            )
    assert not problems, (
        "a failure before the first token should be retried, the user then reading the whole "
        f"answer: {'; '.join(problems)}"
    )


@pytest.mark.scenario(
    task="retries",
    points=2,
    title="Every failure is told in the error shape, never a traceback",
    hint='Answer every failure with an error status and {"code": str, "message": str, '
    '"retryable": bool}: a body that is not JSON or has no question (4xx), every model down '
    "(5xx), on POST /api/answer and the stream alike; catch what goes wrong where it happens.",
    checks=["errors.shape"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_every_failure_is_told_in_the_error_shape(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(503))  # every model, for the last one
    asked = {
        "a body that is not JSON": ("{not json", 400),
        "a body without a question": ('{"query": "what?"}', 400),
        "a question with every model down": (json.dumps({"question": question}), 500),
    }
    problems = []
    for path in ("/api/answer", "/api/answer/stream"):
        for what, (body, lowest) in asked.items():
            async with client.http() as http:
                response = await http.post(path, content=body, headers=JSON_BODY)
            problem = _error_problem(response, lowest)
            if problem:
                problems.append(f"POST {path}, {what}: {problem}")
    assert not problems, f"failures should be told with {ERROR_SHAPE}: {'; '.join(problems)}"


JSON_BODY = {"content-type": "application/json"}


def _error_problem(response: httpx.Response, lowest: int) -> str:
    """What is wrong with `response` as the error reply of a failure whose status should be
    `lowest` or above (4xx: at least 400; 5xx: at least 500), or "" if nothing. A stream may
    instead have started, and end with an `error` event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = response.text.splitlines()
        names = [line.removeprefix("event:").strip() for line in lines if line.startswith("event:")]
        data = [line.removeprefix("data:").strip() for line in lines if line.startswith("data:")]
        if names[-1:] != ["error"]:
            return f"the stream ended with {names[-1:] or 'no event'}, not an `error` event"
        return "" if is_error(_json(data[-1])) else f"its error event carried {data[-1]!r}"
    status, body = response.status_code, response.text
    if lowest <= status < lowest + 100 and is_error(_json(body)):
        return ""
    return f"{status} {excerpt(body)}"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None

"""Timeouts, hidden: a stream that stalls midway, a stream that drips, and a deadline that counts
the fallback's attempt too."""

from __future__ import annotations

import pytest

from harness.app_client import AppClient
from harness.checks import deadlines as cut
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.launcher import AppSettings

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="timeouts",
    points=2,
    title="A stream that stalls after a few tokens ends with an `error` event at the deadline",
    hint="A model can stop writing midway and keep the connection open: the deadline must end "
    "the stream then too, with an `error` event, and close the upstream call.",
    checks=["timeouts.stream", "timeouts.closed", "timeouts.not_early"],
    needs=["streaming"],
)
# The read timeout is beyond the deadline: only the deadline can end the stall.
@pytest.mark.app_settings(REQUEST_DEADLINE="1.0", LLM_READ_TIMEOUT="3.0")
async def test_a_stream_that_stalls_midway_is_cut_off_at_the_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.stall(after_tokens=3, token_delay=0.05))
    reply, span = await cut.stream(client, fake_llm, question, app_settings)
    cut.expect_error_event(reply, "The model stalled after three tokens")
    cut.expect_at_deadline(span, app_settings, "the stream ended")
    await cut.expect_hung_up(fake_llm, "after ending the stream")


@pytest.mark.scenario(
    task="timeouts",
    points=2,
    title="A stream whose tokens come slowly but steadily ends at the deadline",
    hint="Each token arriving within the read timeout says nothing of the whole: enforce the "
    "deadline over the entire stream, not per token.",
    checks=["timeouts.stream", "timeouts.closed", "timeouts.not_early"],
    needs=["streaming"],
)
@pytest.mark.app_settings(REQUEST_DEADLINE="1.0")
async def test_a_slow_token_drip_is_cut_off_at_the_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    # A token every 0.25 s, far within LLM_READ_TIMEOUT (2 s); the last would come at 2.75 s,
    # after the user has given up (`cut.patience`, 2.5 s).
    fake_llm.always(f.ok(tokens=12, token_delay=0.25))
    reply, span = await cut.stream(client, fake_llm, question, app_settings)
    cut.expect_error_event(reply, "The model was still writing when REQUEST_DEADLINE passed")
    cut.expect_at_deadline(span, app_settings, "the stream ended")
    await cut.expect_hung_up(fake_llm, "after ending the stream")


@pytest.mark.scenario(
    task="timeouts",
    points=2,
    title="The deadline counts every attempt, the fallback's included",
    hint="REQUEST_DEADLINE is for the whole request: start it when the request arrives, and do "
    "not give each attempt, or the fallback model, a deadline of its own.",
    checks=["timeouts.whole_request", "timeouts.closed"],
)
@pytest.mark.app_settings(REQUEST_DEADLINE="1.5")
async def test_the_deadline_counts_every_attempt(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    # The primary fails only after 1.2 s, leaving little of the deadline; then the fallback
    # never answers (nor trips LLM_READ_TIMEOUT, 2 s, before the deadline). An app that gives
    # the fallback a deadline of its own answers 1.2 s past the deadline at the earliest, far
    # beyond LATE. The app may also give up before the deadline: any 5xx in the brief's error
    # shape will do (a traceback's 500 is not an answer the app chose).
    fake_llm.always(f.error(503, latency=1.2), model=app_settings.primary_model)
    fake_llm.always(f.hang(), model=app_settings.fallback_model)
    reply, span = await cut.ask(client, fake_llm, question, app_settings)
    assert reply.status >= 500, (
        f"the primary model failed and the fallback never answered, but POST /api/answer "
        f"answered {reply.status} after {reply.took:.2f}s: it should fail (5xx) by the deadline"
    )
    reply.error()
    cut.expect_by_deadline(span, app_settings, f"the {reply.status} came")
    await cut.expect_hung_up(fake_llm, f"after answering {reply.status}")

"""Timeouts, hidden: a stream that stalls midway, a stream that drips, a deadline that counts the
fallback's attempt too, a batch question's own deadline and one deadline for a card's repair."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from harness.app_client import AppClient, Reply, excerpt
from harness.checks import jobs
from harness.checks import deadlines as cut
from harness.checks.errors import ERROR_SHAPE, is_error
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import CLOCK_SLACK, DEADLINE_MARGIN, LATE

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
@pytest.mark.app_settings(REQUEST_DEADLINE="0.6", LLM_READ_TIMEOUT="3.0")
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
@pytest.mark.app_settings(REQUEST_DEADLINE="0.6")
async def test_a_slow_token_drip_is_cut_off_at_the_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    # A token every 0.25 s, far within LLM_READ_TIMEOUT (2 s); the last would come at 2.75 s,
    # after the user has given up (`cut.patience`, 1.7 s).
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
    checks=["timeouts.whole_request", "timeouts.closed", "timeouts.answer"],
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


@pytest.mark.scenario(
    task="timeouts",
    points=2,
    title="A batch question that hangs fails at its own deadline, counted from its turn",
    hint="Give each question of a batch REQUEST_DEADLINE from the moment its turn comes (its slot "
    "under MAX_CONCURRENCY), not from the batch's start: when it passes, close its call and mark "
    "the item failed with the error shape.",
    checks=["timeouts.batch_item", "timeouts.closed"],
    needs=["jobs"],
)
@pytest.mark.app_settings(REQUEST_DEADLINE="0.6", LLM_READ_TIMEOUT="3.0", MAX_CONCURRENCY="1")
async def test_a_batch_question_that_hangs_fails_at_its_deadline(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    # One at a time: the first question takes 0.3 s, then the second hangs. Its deadline runs
    # from its turn, after the first call ended; one run from the batch's start would cut it off
    # 0.3 s into its call, far from the 0.54 s allowed. (Both bounds count from what the fake
    # saw, on the safe side of the app's own moments, so the short deadline is fair to it.)
    slow, hanging = questions = jobs.numbered(question, 2)
    fake_llm.always(f.ok(latency=0.3), prompt_contains=slow)
    fake_llm.always(f.hang(), prompt_contains=hanging)
    batch = await jobs.Batch.start(client, questions)
    items = await batch.wait(
        lambda items: items[1]["state"] not in jobs.UNFINISHED,
        "the hanging question to fail",
        timeout=cut.patience(app_settings) + 1.0,
    )
    assert items[1]["state"] == "failed" and is_error(items[1].get("error")), (
        f"the model never answered {hanging!r}; at its deadline its item should be failed with "
        f"{ERROR_SHAPE}: {excerpt(items[1])}"
    )
    await cut.expect_hung_up(fake_llm, "after failing the question at its deadline")
    answered = jobs.calls_for(fake_llm.calls, slow)[-1]  # its turn came after this ended
    calls = jobs.calls_for(fake_llm.calls, hanging)
    hung_up = max(call.disconnected_at or call.ended_at or 0.0 for call in calls)
    assert answered.ended_at is not None
    deadline = app_settings.request_deadline
    earliest = deadline * (1 - DEADLINE_MARGIN)
    took = hung_up - answered.ended_at  # at least the time since its turn came
    assert took >= earliest - CLOCK_SLACK, (
        f"the app cut the question off {took:.2f}s after its turn came (the question before it "
        f"was answered): its REQUEST_DEADLINE ({deadline:g}s) counts from its turn, not from the "
        "batch's start"
    )
    since_call = hung_up - calls[0].received_at  # at most the time since its turn
    assert since_call <= deadline + LATE, (
        f"the app cut the hanging question off {since_call:.2f}s after its call reached the "
        f"model; REQUEST_DEADLINE is {deadline:g}s (allowed: up to {LATE}s after it)"
    )


@pytest.mark.scenario(
    task="timeouts",
    points=2,
    title="A card's repair shares the request's deadline",
    hint="POST /api/extract has one REQUEST_DEADLINE for the whole request, the repair call "
    "included: do not start the clock again for the repair, nor give each call a share of it; "
    "when it passes, close the call and answer 504 with the error shape.",
    checks=["timeouts.extract", "timeouts.closed", "timeouts.not_early", "timeouts.whole_request"],
    needs=["structured"],
)
@pytest.mark.app_settings(REQUEST_DEADLINE="1.0", LLM_READ_TIMEOUT="3.0")
async def test_a_card_s_repair_shares_the_deadline(
    client: AppClient, fake_llm: FakeLLM, app_settings: AppSettings
) -> None:
    # The "tuning" paper: the first answer holds no card and comes after 0.7 s; the repair never
    # comes. An app that gives the repair a deadline of its own answers 1.7 s after its first
    # call at the earliest. Meanwhile the "retrieval" paper's card comes whole after 0.6 s: an
    # app that gives each call a share of the deadline cuts it off. The papers' abstracts, which
    # the app sends, tell their calls apart.
    fake_llm.always(f.ok(content="No card."))
    fake_llm.script(
        f.ok(latency=0.7, content="No card here, sorry."), f.hang(), prompt_contains=TUNING
    )
    card = {"title": RETRIEVAL, "year": 2024, "keywords": ["retrieval", "long documents"]}
    slow = cut.IN_TIME * app_settings.request_deadline
    fake_llm.always(f.ok(latency=slow, content=json.dumps(card)), prompt_contains=RETRIEVAL)
    replies: dict[str, Reply] = {}

    async def extract(paper: str) -> None:
        replies[paper] = await client.request("POST", "/api/extract", json={"paper": paper})

    asked = time.monotonic()
    with anyio.move_on_after(cut.patience(app_settings)):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(extract, "retrieval")
            await extract("tuning")
    span = cut.Span.of(asked, fake_llm, cut.calls_for(fake_llm, TUNING))
    assert "tuning" in replies, (
        f"POST /api/extract had not answered {span.took:.2f}s after it was asked: the repair "
        f"never came and the app waited for it past REQUEST_DEADLINE "
        f"({app_settings.request_deadline:g}s)"
    )
    reply = replies["tuning"]
    assert reply.status >= 500 and is_error(reply.json()), (
        f"the repair never came, and POST /api/extract answered {reply.status} after "
        f"{span.took:.2f}s: at the deadline it should answer 504 with {ERROR_SHAPE}"
    )
    cut.expect_by_deadline(span, app_settings, f"the {reply.status} came")
    await cut.expect_hung_up(fake_llm, f"after answering {reply.status}")
    cut.expect_in_time(replies.get("retrieval"), f"A paper's card came whole after {slow:.2f}s")


# Words of the papers' abstracts (exercise_app/papers.py), in every call about them.
TUNING = "Instruction Tuning with Synthetic Feedback"
RETRIEVAL = "Retrieval-Augmented Generation for Long Documents"

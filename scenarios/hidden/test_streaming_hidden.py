"""Streaming, hidden: streams side by side, and a stream with nothing to stream."""

from __future__ import annotations

import time

import anyio
import pytest

from harness.app_client import AppClient, StreamReply
from harness.checks.deadlines import Span, expect_by_deadline
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import FAST_RETRIES

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="streaming",
    points=2,
    title="One user's slow answer does not hold up another's",
    hint="Streams must run side by side: no lock around the model call, no blocking (sync) HTTP "
    "client inside async code.",
    checks=["app.responsive"],
)
async def test_streams_run_side_by_side(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    slow, quick = f"{question} (slow)", f"{question} (quick)"
    # It writes for 0.9 s: time for a quick answer on a loaded machine, none for one that waits.
    fake_llm.script(f.ok(tokens=10, token_delay=0.1), prompt_contains=slow)
    slow_tab, quick_tab = client.tab(slow, stream=True), client.tab(quick, stream=True)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(slow_tab.run)
        await fake_llm.ledger.wait_for(
            lambda calls: len(calls) == 1 or slow_tab.reply is not None, what="the first call"
        )
        tasks.start_soon(quick_tab.run)
    assert isinstance(slow_tab.reply, StreamReply) and isinstance(quick_tab.reply, StreamReply)
    quick_tab.reply.expect_events()
    quick_tab.reply.last("done")
    slow_call = next(call for call in fake_llm.calls if slow in call.prompt)
    quick_done = quick_tab.reply.events[-1].at
    assert slow_call.ended_at is not None and quick_done < slow_call.ended_at, (
        f"a quick answer ended {quick_done - (slow_call.ended_at or 0):.2f}s after a slow one "
        "asked just before by someone else: it waited for it"
    )


@pytest.mark.scenario(
    task="streaming",
    points=2,
    title="A stream with every model down says so, within the deadline",
    hint="When no model can answer, end the stream with an `error` event (or answer a 5xx with "
    "a JSON error before streaming starts); never close it silently or leave it hanging.",
    checks=["streaming.error"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_stream_with_every_model_down_ends_with_an_error(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503))
    started = time.monotonic()
    reply = await client.stream(question)
    span = Span.of(started, fake_llm)
    if reply.is_event_stream:
        error = reply.last("error").data
        assert isinstance(error, dict) and isinstance(error.get("message"), str), (
            f"the error event should carry a JSON object with a 'message': {error!r}"
        )
    else:
        assert reply.status >= 500, (
            f"with every model down, the stream endpoint answered {reply.status}: {reply.body!r}"
        )
    expect_by_deadline(span, app_settings, "with every model down, the stream ended")

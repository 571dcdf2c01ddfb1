"""Cancellation: when the user goes away, the model stops (and stops being paid for)."""

from __future__ import annotations

import anyio
import pytest

from harness.app_client import AppClient, Reply
from harness.fake_llm import Call, FakeLLM
from harness.fake_llm import faults as f
from harness.timing import NOTICED_LEAVING, RELAY

pytestmark = pytest.mark.anyio


def stopped_promptly(call: Call, left_at: float, what: str) -> None:
    """The call was cancelled (the app hung up on the provider) soon after the user left."""
    assert call.disconnected_at is not None, (
        f"the user left {what}, but the app let the model run on to the end "
        f"({call.outcome}; {call.tokens_after(left_at)} tokens billed after the user left)"
    )
    late = call.disconnected_at - left_at
    assert late <= NOTICED_LEAVING, (
        f"the app hung up on the model {late:.2f}s after the user left {what} "
        f"(allowed: {NOTICED_LEAVING}s); {call.tokens_after(left_at)} tokens billed meanwhile"
    )


@pytest.mark.scenario(
    task="cancellation",
    points=3,
    title="Leaving a stream midway stops the model",
    hint="When the client disconnects from POST /api/answer/stream, cancel the upstream call "
    "(close its response/stream) so the provider stops generating and billing.",
    checks=["cancellation.stream"],
    needs=["streaming"],
)
async def test_leaving_a_stream_midway_stops_the_model(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(tokens=40, token_delay=0.05))  # 2 s of writing
    async with client.open_stream(question) as stream:
        stream.result.expect_events()
        async for _ in stream.follow():
            if len(stream.result.tokens) == 3:
                break  # the user closes the tab after reading three tokens
    assert stream.left_at is not None, "the stream ended before the user could leave it"
    call = await fake_llm.ledger.only_call()
    stopped_promptly(call, stream.left_at, "after reading three tokens")


@pytest.mark.scenario(
    task="cancellation",
    points=3,
    title="Closing the tab while the model thinks stops it (POST /api/answer)",
    hint="A plain handler is not cancelled when its client goes away: watch for the disconnect "
    "(e.g. `await request.receive()` returning http.disconnect) and cancel the LLM call then.",
    checks=["cancellation.answer"],
)
async def test_leaving_while_the_model_thinks_stops_it(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(first_token=1.5))  # the model thinks for 1.5 s before writing
    tab = client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the model's call")
        left_at = tab.close()
    call = await fake_llm.ledger.only_call()
    stopped_promptly(call, left_at, "while the model was thinking")
    assert call.tokens == 0, f"{call.tokens} tokens were billed for an answer nobody waited for"


@pytest.mark.scenario(
    task="cancellation",
    points=2,
    title="An answer two tabs share survives one of them closing",
    hint="Two people asking the same question at once share one call: cancel it only when the "
    "last of them has gone, not when the first leaves.",
    checks=["cancellation.shared"],
)
async def test_a_shared_answer_survives_one_tab_closing(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(first_token=1.0))  # both tabs are in by ~0.4 s
    first, second = client.tab(question), client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the first tab's call")
        tasks.start_soon(second.run)
        await second.sent()
        await anyio.sleep(RELAY)  # the app has taken the second request in
        first.close()
    calls = await fake_llm.ledger.settled()
    assert isinstance(second.reply, Reply), "the second tab got no answer"
    answer = second.reply.answer()
    assert len(calls) == 1, (
        f"two tabs asked the same question at once and the app made {len(calls)} calls to the "
        "model; they should share one, as the starter did"
    )
    assert calls[0].outcome == "completed", (
        "when the first tab closed, the app cancelled the call the second tab was waiting for "
        f"({calls[0].outcome})"
    )
    assert answer == calls[0].text, f"the second tab got {answer!r}, not the model's answer"

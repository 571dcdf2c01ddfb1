"""Cancellation, hidden: a stream left before its first token, the last of two tabs leaving, and
the same question asked again after its asker left."""

from __future__ import annotations

import typing

import anyio
import pytest

from harness.app_client import AppClient, excerpt
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.timing import NOTICED_LEAVING, RELAY

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="cancellation",
    points=2,
    title="Leaving a stream before its first token stops the model",
    hint="The client can go away while the model is still thinking, before anything was sent: "
    "the upstream call must be cancelled then too.",
    checks=["cancellation.stream"],
    needs=["streaming"],
)
async def test_leaving_a_stream_before_its_first_token_stops_the_model(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(first_token=1.5))
    tab = client.tab(question, stream=True)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(
            lambda calls: len(calls) == 1 or tab.reply is not None, what="the model's call"
        )
        left_at = tab.close()
    call = await fake_llm.ledger.only_call()
    assert call.disconnected_at is not None, (
        f"the user left while the model was thinking, but the app let it run on to the end "
        f"({call.outcome}; {call.tokens} tokens billed)"
    )
    late = call.disconnected_at - left_at
    assert late <= NOTICED_LEAVING, (
        f"the app hung up on the model {late:.2f}s after the user left (allowed: "
        f"{NOTICED_LEAVING}s)"
    )
    assert call.tokens == 0, f"{call.tokens} tokens were billed for an answer nobody waited for"


@pytest.mark.scenario(
    task="cancellation",
    points=2,
    title="A shared answer stops when the last tab waiting for it closes",
    hint="Count who is waiting for a shared call: when the last one leaves, cancel it; no call "
    "should run on for nobody.",
    checks=["cancellation.nothing_left"],
)
async def test_a_shared_answer_stops_when_the_last_tab_closes(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(first_token=2.0))
    first, second = client.tab(question), client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the first tab's call")
        tasks.start_soon(second.run)
        await second.sent()
        await anyio.sleep(RELAY)  # the app has taken the second request in
        first.close()
        # The tabs leave apart, as people do: an app that wrongly cancels at the first has
        # finished doing so before the second leaves, and fails the other scenario for it.
        await anyio.sleep(NOTICED_LEAVING)
        left_at = second.close()
    calls = await fake_llm.ledger.settled()
    running_on = [call for call in calls if call.disconnected_at is None]
    assert not running_on, (
        f"both tabs closed, but the app let the model run on to the end "
        f"({sum(call.tokens for call in running_on)} tokens billed for nobody)"
    )
    late = max(typing.cast(float, call.disconnected_at) for call in calls) - left_at
    assert late <= NOTICED_LEAVING, (
        f"the app hung up on the model {late:.2f}s after the last tab closed "
        f"(allowed: {NOTICED_LEAVING}s)"
    )


@pytest.mark.scenario(
    task="cancellation",
    points=2,
    title="A question asked again after its asker left is answered afresh",
    hint="When a call is cancelled because everyone waiting for it left, forget it: whoever asks "
    "the same question next gets a new call, not the cancelled one (nor its error); and count "
    "who waits for each call afresh, so that the next asker leaving cancels it too.",
    checks=["cancellation.nothing_left"],
)
async def test_a_question_asked_again_after_leaving_is_answered(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(first_token=1.5))  # the first time, the model thinks for a while
    tab = client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the model's call")
        tab.close()
    await fake_llm.ledger.settled()  # cancelled, or (other scenarios' business) run to its end
    reply = await client.ask(question)  # the same question, by someone else, a moment later
    calls = fake_llm.calls
    assert reply.status == 200, (
        f"a question whose asker had left was asked again, and the app answered {reply.status}: "
        f"{excerpt(reply.text)}; the second asker should get a fresh answer"
    )
    assert len(calls) == 2 and reply.answer() == calls[1].text, (
        f"a question whose asker had left was asked again: the app made {len(calls)} call(s) "
        "in all, and its answer should come from a new one"
    )
    fake_llm.script(f.ok(first_token=1.5))  # asked a third time, and left again
    tab = client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 3, what="the third call")
        left_at = tab.close()
    third = (await fake_llm.ledger.settled())[2]
    hung_up = third.disconnected_at
    assert hung_up is not None and hung_up - left_at <= NOTICED_LEAVING, (
        "the question was asked a third time and its asker left too, but the app let the model "
        f"run on ({third.outcome}, {third.tokens_after(left_at)} tokens billed after they left)"
    )

"""Metadata, hidden: it stays true when an answer takes several calls, when it fails, for a batch
question (graded along with jobs) and for a tab joining a shared answer; and every response has its
request id."""

from __future__ import annotations

import secrets

import anyio
import pytest

from harness.app_client import AppClient, Reply
from harness.checks import jobs
from harness.checks import metadata as meta
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppSettings
from harness.timing import CLOCK_SLACK, FAST_RETRIES, RELAY

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="metadata",
    points=3,
    title="After a retry, attempts, usage and latency cover every call",
    hint='"attempts" counts every call to the model for this answer, retries included; "usage" '
    'is the usage of the call that answered; "latency_ms" runs from the question to the whole '
    "answer, across every attempt (not only the last one's).",
    checks=["metadata.attempts", "metadata.usage", "metadata.latency"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_metadata_covers_every_attempt(
    client: AppClient, fake_llm: FakeLLM, app_settings: AppSettings, question: str
) -> None:
    # The failing call takes a while, so that timing only the last attempt falls visibly short.
    failing = f.error(503, latency=0.25)
    fake_llm.script(failing, f.ok(latency=0.05), model=app_settings.primary_model)
    reply = await client.ask(question)
    reply.answer()
    metadata = meta.expect_types(reply.json())
    calls = await fake_llm.ledger.settled()
    assert len(calls) == 2, f"expected one failed call and one retry: {fake_llm.ledger.summary()}"
    meta.expect_served_by(metadata, calls)
    meta.expect_latency(metadata, calls, within=reply.took)


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="Error replies carry the request id too",
    hint="Send the X-Request-ID header on every response, errors included (they are the ones "
    "users ask about): set it where every response passes, e.g. in an ASGI middleware.",
    checks=["metadata.request_id"],
)
async def test_error_replies_carry_the_request_id(client: AppClient) -> None:
    own = f"faultfirst-{secrets.token_hex(8)}"
    headers = {meta.REQUEST_ID: own}
    for body in ({"question": ""}, {"query": "a question under the wrong name"}):
        reply = await client.request("POST", "/api/answer", json=body, headers=headers)
        assert reply.status >= 400, f"expected an error reply, got {reply.status}"
        assert reply.headers.get(meta.REQUEST_ID) == own, (
            f"the error reply ({reply.status}) to a request with {meta.REQUEST_ID}: {own} carried "
            f"{meta.REQUEST_ID}: {reply.headers.get(meta.REQUEST_ID)!r}"
        )


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="Every response carries X-Request-ID: streams, other endpoints and failures too",
    hint="Set the X-Request-ID header where every response passes (an ASGI middleware), the "
    "client's own id when it sent one: streams, the page, 404s and 5xx included.",
    checks=["metadata.request_id"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_every_response_carries_the_request_id(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    own = f"faultfirst-{secrets.token_hex(8)}"
    headers = {meta.REQUEST_ID: own}
    asked = {
        "GET /": ("GET", "/", None),
        "GET /healthz": ("GET", "/healthz", None),
        "POST /api/batch, not a batch": ("POST", "/api/batch", {"question": question}),
        "POST /api/extract, an unknown paper": ("POST", "/api/extract", {"paper": "quantum"}),
        "GET an unknown job": ("GET", "/api/jobs/no-such-job", None),
        "POST /api/answer, every model down": ("POST", "/api/answer", {"question": question}),
    }
    fake_llm.always(f.error(503))  # for the last one
    problems = []
    for what, (method, path, body) in asked.items():
        reply = await client.request(method, path, json=body, headers=headers)
        if reply.headers.get(meta.REQUEST_ID) != own:
            problems.append(f"{what} ({reply.status}): {reply.headers.get(meta.REQUEST_ID)!r}")
    async with client.open_stream(question, headers=headers) as stream:
        if stream.result.headers.get(meta.REQUEST_ID) != own:
            problems.append(
                f"POST /api/answer/stream ({stream.result.status}): "
                f"{stream.result.headers.get(meta.REQUEST_ID)!r}"
            )
    assert not problems, (
        f"every response should carry {meta.REQUEST_ID}: {own}, the client's own id, but these "
        f"carried: {'; '.join(problems)}"
    )


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="A batch question's result carries its metadata and the batch request's id",
    hint='A completed item\'s "result" is POST /api/answer\'s reply: the answer with "model", '
    '"fallback", "attempts", "usage", "latency_ms", and as "request_id" the id of the '
    "POST /api/batch that asked it (its X-Request-ID).",
    checks=["metadata.fields", "metadata.attempts", "metadata.usage", "metadata.request_id"],
    needs=["jobs"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_batch_result_carries_the_metadata(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    retried, plain = questions = jobs.numbered(question, 2)
    fake_llm.script(f.error(503), prompt_contains=retried)  # then it answers
    batch = await jobs.Batch.start(client, questions)
    items = await batch.finished()
    problems = jobs.wrong_answers(items, fake_llm.calls)
    assert not problems, "; ".join(problems)
    sent_id = batch.reply.headers.get(meta.REQUEST_ID)
    for item in items:
        metadata = meta.expect_types(item["result"])
        meta.expect_served_by(metadata, jobs.calls_for(fake_llm.calls, item["question"]))
        assert sent_id and metadata["request_id"] == sent_id, (
            f"the result of {item['question']!r} says request_id {metadata['request_id']!r}; "
            f"it should be the id of the POST /api/batch that asked it, {sent_id!r}"
        )


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="A tab that joins a shared answer reports its own latency",
    hint='"latency_ms" is the time this request waited: a tab that joins a call already under way '
    "(the same question asked at once) counts from its own question, not from the first tab's.",
    checks=["metadata.latency"],
)
async def test_a_tab_joining_a_shared_answer_reports_its_own_latency(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    # The second tab asks 0.3 s after the first call and waits the rest of it; counted from the
    # first tab's question, its latency would be at least 0.3 s more than it waited. The call
    # goes on for RELAY after that, time for the second tab to reach a loaded app and join it.
    fake_llm.script(f.ok(latency=0.3 + RELAY))
    first, second = client.tab(question), client.tab(question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the first tab's call")
        await anyio.sleep(0.3)
        tasks.start_soon(second.run)
    assert isinstance(first.reply, Reply) and isinstance(second.reply, Reply), "a tab got no answer"
    first.reply.answer()
    meta.expect_latency(
        meta.expect_types(first.reply.json()), fake_llm.calls[:1], within=first.reply.took
    )
    second.reply.answer()
    latency = meta.expect_types(second.reply.json())["latency_ms"]
    waited = second.reply.took
    assert latency / 1000 <= waited + meta.ROUNDING + CLOCK_SLACK, (
        f"the second tab waited {waited * 1000:.0f} ms for its answer, and its latency_ms says "
        f"{latency}: count from this request's own question, not from the first tab's"
    )


@pytest.mark.scenario(
    task="metadata",
    points=1,
    title="An answer from the fallback counts the primary's attempts too",
    hint='"attempts" counts every call to the model for this answer: the primary\'s failed '
    "attempts and the fallback's, together.",
    checks=["metadata.attempts"],
    needs=["fallback"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_fallback_answer_counts_every_attempt(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    reply = await client.ask(question)
    reply.answer()
    metadata = meta.expect_types(reply.json())
    meta.expect_served_by(metadata, await fake_llm.ledger.settled())

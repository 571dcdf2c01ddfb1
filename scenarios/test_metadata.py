"""Metadata: every answer says which model wrote it, what it cost, how long it took, and its id."""

from __future__ import annotations

import secrets
import time

import pytest

from harness.app_client import AppClient
from harness.checks import metadata as meta
from harness.checks import page
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f

pytestmark = pytest.mark.anyio

# A model that thinks for a quarter of a second, then writes ten tokens: long enough that a latency
# in seconds rather than milliseconds, or one that leaves out the wait, cannot pass for right.
THINKER = f.ok(latency=0.25, tokens=10, token_delay=0.01)


@pytest.mark.scenario(
    task="metadata",
    points=3,
    title="An answer carries its model, attempts, fallback flag and token usage",
    hint=(
        'The reply of POST /api/answer should hold, besides "answer": "model" (string), "fallback" '
        '(boolean), "attempts" (integer: calls to the model, the first included), "usage" '
        '({"prompt_tokens", "completion_tokens"}: integers, as the provider reported them), '
        '"latency_ms" (integer) and "request_id" (string, also sent as the X-Request-ID header).'
    ),
    checks=["metadata.fields", "metadata.attempts", "metadata.usage"],
)
async def test_an_answer_carries_typed_metadata(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    reply = await client.ask(question)
    reply.answer()
    metadata = meta.expect_types(reply.json())
    call = await fake_llm.ledger.only_call()
    meta.expect_served_by(metadata, [call])
    assert metadata["fallback"] is False, (
        'the primary model answered, but the metadata says "fallback": true'
    )


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="latency_ms is the time from the question to the whole answer",
    hint='Measure "latency_ms" in the app, from the moment the request arrives to the moment the '
    "answer is complete, and report it as a whole number of milliseconds.",
    checks=["metadata.latency"],
)
async def test_latency_is_the_time_the_user_waited(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(THINKER)
    reply = await client.ask(question)
    reply.answer()
    metadata = meta.expect_types(reply.json())
    call = await fake_llm.ledger.only_call()
    meta.expect_latency(metadata, [call], within=reply.took)


@pytest.mark.scenario(
    task="metadata",
    points=2,
    title="Every answer has a request id, the client's own if it sent one",
    hint="Give each request an id: the client's X-Request-ID header when it sent one, a new "
    'unique one otherwise. Send it back in the X-Request-ID response header and as "request_id" '
    "in the metadata.",
    checks=["metadata.request_id"],
)
async def test_every_answer_has_a_request_id(client: AppClient, question: str) -> None:
    ids = []
    for _ in range(2):
        reply = await client.ask(question)
        reply.answer()
        metadata = meta.expect_types(reply.json())
        meta.expect_request_id(metadata, reply.headers)
        ids.append(metadata["request_id"])
    assert ids[0] != ids[1], f"two requests got the same id {ids[0]!r}; each needs its own"
    own = f"faultfirst-{secrets.token_hex(8)}"
    body = {"question": question}
    reply = await client.request("POST", "/api/answer", json=body, headers={meta.REQUEST_ID: own})
    reply.answer()
    metadata = meta.expect_types(reply.json())
    meta.expect_request_id(metadata, reply.headers)
    assert metadata["request_id"] == own, (
        f"the client sent {meta.REQUEST_ID}: {own}, but the answer's id is "
        f"{metadata['request_id']!r}: use the client's id when it sends one"
    )


@pytest.mark.scenario(
    task="metadata",
    points=3,
    title="The stream's `done` event carries the same metadata, usage included",
    hint="End the stream with `event: done` carrying the same fields as POST /api/answer's "
    "metadata. A streamed completion reports its usage only when asked: send "
    '"stream_options": {"include_usage": true} and read the usage from the last chunk.',
    checks=["metadata.fields", "metadata.usage", "metadata.latency", "metadata.request_id"],
    needs=["streaming"],
)
async def test_the_done_event_carries_the_metadata(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(THINKER)
    started = time.monotonic()
    reply = await client.stream(question)
    reply.expect_events()
    done = reply.last("done")
    metadata = meta.expect_types(done.data)
    call = await fake_llm.ledger.only_call()
    meta.expect_served_by(metadata, [call])
    meta.expect_request_id(metadata, reply.headers)
    meta.expect_latency(metadata, [call], within=done.at - started)


@pytest.mark.scenario(
    task="metadata",
    points=1,
    title="The page shows which model answered, and how long it took",
    hint='Show the answer\'s "model" and "latency_ms" under it on the page (from the `done` '
    "event, or POST /api/answer's reply).",
    checks=["metadata.page"],
)
async def test_the_page_shows_the_model_and_latency(client: AppClient) -> None:
    text = await page.read(client)
    for field in ("model", "latency_ms"):
        page.expect_pattern(text, f'show the answer\'s "{field}"', page.field(field))

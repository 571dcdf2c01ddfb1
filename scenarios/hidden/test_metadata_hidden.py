"""Metadata, hidden: it stays true when an answer takes several calls, and when it fails."""

from __future__ import annotations

import secrets

import pytest

from harness.app_client import AppClient
from harness.checks import metadata as meta
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.launcher import AppSettings
from harness.timing import FAST_RETRIES

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

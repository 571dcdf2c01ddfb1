"""Streaming: the answer appears on the page as the model writes it."""

from __future__ import annotations

import re
import statistics

import pytest

from harness.app_client import AppClient
from harness.checks import page
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.timing import RELAY, STEADY

pytestmark = pytest.mark.anyio

# A model that writes 20 tokens, 0.03 s apart: its last token comes 0.57 s after its first (the
# fake is never early), over the RELAY a correct app may take to pass the first one on.
SLOW_WRITER = f.ok(tokens=20, token_delay=0.03)

# How a page reads a body as it comes, which EventSource cannot do for a POST.
READ_AS_IT_COMES = r"\bgetReader\s*\(|for\s+await\s*\([^)]*\bof\s+[\w.]*\bbody\s*\)"

# An answer holding what naive encodings break: quotes, backslashes, new lines (models often
# start with one), non-ASCII, and the blank line that ends a server-sent event.
AWKWARD = (
    '\n\nShe said "p < 0.05" \\ C:\\new\\table.\n\ndata: naïve café, 日本語 — ok 🙂 {"x": 1}\r\n'
)


@pytest.mark.scenario(
    task="streaming",
    points=3,
    title="Tokens reach the user while the model is still writing",
    hint="In POST /api/answer/stream, send each piece of the answer as an SSE `token` event the "
    "moment it arrives from the model (stream the upstream call too); never collect the whole "
    "answer first.",
    checks=["streaming.live"],
)
async def test_tokens_arrive_while_the_model_writes(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(SLOW_WRITER)
    reply = await client.stream(question)
    reply.expect_events()
    call = await fake_llm.ledger.only_call()
    assert reply.tokens, f"the stream carried no token event (events: {reply.names})"
    assert call.first_token_at is not None and call.token_times
    first = reply.tokens[0].at
    assert first < call.token_times[-1], (
        f"the first token reached the user {first - call.token_times[-1]:.2f}s after the model "
        "had finished writing: the answer was held back until it was complete"
    )
    assert first - call.first_token_at <= RELAY, (
        f"the first token reached the user {first - call.first_token_at:.2f}s after the model "
        f"wrote it (allowed: {RELAY}s)"
    )
    lateness = [event.at - written for event, written in zip(reply.tokens, call.token_times)]
    typical = statistics.median(lateness)
    assert typical <= STEADY, (
        f"the tokens reached the user {typical * 1000:.0f} ms after the model wrote them, on "
        f"median (allowed: {STEADY * 1000:.0f} ms): they were held back and sent in bursts"
    )


@pytest.mark.scenario(
    task="streaming",
    points=2,
    title="The stream is a series of `token` events and ends with `done`",
    hint="Answer with Content-Type: text/event-stream; write `event: token` + "
    '`data: {"text": ...}` for each piece, its JSON made by a JSON encoder (the text holds '
    "quotes, backslashes, new lines and any language, to be shown exactly), and finish with one "
    '`event: done` carrying the metadata, at least {"model": ...}.',
    checks=["streaming.events", "streaming.text", "streaming.done"],
)
async def test_stream_is_token_events_then_done(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(content=AWKWARD))
    reply = await client.stream(question)
    reply.expect_events()
    done = reply.last("done")
    others = sorted(set(reply.names[:-1]) - {"token"})
    assert not others, f"before `done`, the stream should carry only token events, not {others}"
    calls = fake_llm.calls
    assert len(calls) == 1, f"one question should take one call to the model, not {len(calls)}"
    call = calls[0]
    assert reply.text == call.text, (
        f"the tokens spell {reply.text!r}, but the model wrote {call.text!r}"
    )
    assert isinstance(done.data, dict) and isinstance(done.data.get("model"), str), (
        f'the done event should carry the answer\'s metadata, at least {{"model": ...}}; it '
        f"carried {done.data!r}"
    )


@pytest.mark.scenario(
    task="streaming",
    points=2,
    title="A model failing mid-answer ends the stream with an `error` event",
    hint="When the upstream fails after the stream has begun, send `event: error` with "
    '{"code": ..., "message": ..., "retryable": true|false} and end the stream: the page must '
    "be able to tell a failure from an answer that is simply short.",
    checks=["streaming.error", "errors.shape"],
)
async def test_a_failure_midway_ends_with_an_error_event(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(500, after_tokens=3))  # every attempt breaks after three tokens
    reply = await client.stream(question)
    reply.expect_events()
    assert "done" not in reply.names, (
        f"the model failed mid-answer, but the stream ended with `done` as if the answer were "
        f"complete (events: {reply.names})"
    )
    error = reply.last("error").data
    assert isinstance(error, dict), f"the error event should carry a JSON object, not {error!r}"
    assert isinstance(error.get("code"), str) and error["code"], (
        f"the error event should carry a string 'code': {error!r}"
    )
    assert isinstance(error.get("message"), str) and error["message"].strip(), (
        f"the error event should carry a 'message' for people: {error!r}"
    )
    assert isinstance(error.get("retryable"), bool), (
        f"the error event should say whether trying again may help ('retryable': true or "
        f"false): {error!r}"
    )


@pytest.mark.scenario(
    task="streaming",
    points=1,
    title="The page reads the answer from the stream",
    hint="Make the page call POST /api/answer/stream with fetch (EventSource cannot POST) and show "
    "each `token` event's text as it comes, reading the response body as it arrives "
    "(response.body.getReader(), or for await over it).",
    checks=["streaming.page"],
)
async def test_the_page_reads_the_stream(client: AppClient) -> None:
    text = await page.read(client)
    what = "ask POST /api/answer/stream and show its `token` events"
    page.expect(text, what, "/api/answer/stream", "token")
    what = 'show each token event\'s "text" (e.g. data.text)'
    page.expect_pattern(text, what, page.field("text"))
    page.expect_pattern(
        text,
        "read the stream's body as it arrives (response.body.getReader(), or for await over "
        "response.body), not whole at its end",
        READ_AS_IT_COMES,
    )
    assert not re.search(r"EventSource\s*\(\s*[\"'`]/api/answer/stream", text), (
        "the page reads the stream with EventSource, which can only send GET: the stream is "
        "POST /api/answer/stream, so read it with fetch and response.body.getReader()"
    )

"""Every fault in the catalogue, as a real HTTP client over loopback sees it, and as the ledger
records it. Timing assertions state their tolerance: lower bounds are tight (the fake schedules
against the clock and must never be early), upper bounds are generous (a loaded 2-core machine,
CI runs two test workers at once)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from harness.fake_llm import FakeLLM, text
from harness.fake_llm import faults as f
from harness.fake_llm.playback import DRIP_INTERVAL

from .helpers import MODEL, chat, client, gaps, open_stream, read_timeout, wait_for_one_call

pytestmark = pytest.mark.anyio

# The event loop's timers and the clocks both have sub-millisecond granularity; a lower bound gets
# this much slack and no more, so a fake that is early by any real amount fails.
CLOCK_SLACK = 0.001
# Upper bounds: a thread hop to the server, loopback, and a scheduler that may be busy with the
# other test worker on this 2-core machine.
LOADED_MACHINE = 0.15


# -- ok --------------------------------------------------------------------------------------------


async def test_ok_json_answer_has_the_ledger_text_and_usage(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok())
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    call = fake_llm.calls[0]
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert response.headers["x-request-id"] == body["id"]
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == call.text != ""
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.tokens,
        "total_tokens": call.prompt_tokens + call.tokens,
    }
    assert 24 <= call.tokens <= 64  # the derived answer's documented length
    assert (call.status, call.outcome) == (200, "completed")


async def test_ok_stream_is_role_chunk_tokens_finish_chunk_and_done(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(tokens=12))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        await stream.read()

    chunks = stream.chunks
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(stream.tokens) == 12
    assert [c["choices"][0]["delta"] for c in chunks[1:13]] == [{"content": t} for t in stream.tokens]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert len(chunks) == 1 + 12 + 1
    assert stream.events[-1].data == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all("usage" not in c for c in chunks)  # only with stream_options.include_usage

    call = fake_llm.calls[0]
    assert stream.text == call.text
    assert (call.tokens, call.status, call.outcome, call.stream) == (12, 200, "completed", True)


async def test_stream_include_usage_ends_with_a_usage_chunk_without_choices(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        async with open_stream(http, chat(stream_options={"include_usage": True})) as stream:
            await stream.read()

    call = fake_llm.calls[0]
    *content_chunks, usage_chunk = stream.chunks
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.tokens,
        "total_tokens": call.prompt_tokens + call.tokens,
    }
    assert all(c["usage"] is None for c in content_chunks)  # as OpenAI sends them
    assert content_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.done and stream.text == call.text


# -- error ---------------------------------------------------------------------------------------


async def test_error_sends_status_retry_headers_and_a_provider_shaped_body(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.error(429, retry_after=0.2, retry_after_ms=200, headers={"X-RateLimit-Remaining": "0"}))
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())

    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.2"
    assert response.headers["retry-after-ms"] == "200"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.json() == {
        "error": {
            "message": "Rate limit reached. Please try again later.",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    call = fake_llm.calls[0]
    assert (call.status, call.tokens, call.fault) == (
        429,
        0,
        "error 429 (X-RateLimit-Remaining: 0, retry-after: 0.2, retry-after-ms: 200)",
    )


async def test_error_on_a_stream_is_a_plain_error_response_before_any_event(fake_llm: FakeLLM) -> None:
    fake_llm.script(
        f.error(503, message="The engine is warming up.", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    )
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        body = json.loads(await stream.response.aread())

    assert stream.response.status_code == 503
    assert stream.response.headers["content-type"] == "application/json"
    assert stream.response.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert body["error"]["message"] == "The engine is warming up."
    assert (body["error"]["type"], body["error"]["code"]) == ("server_error", "service_unavailable")


async def test_error_after_tokens_on_a_stream_sends_tokens_then_an_error_chunk(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.error(500, after_tokens=3))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    assert stream.response.status_code == 200  # the error comes after the headers
    assert len(stream.tokens) == 3
    last = stream.events[-1].json()
    assert last == {
        "error": {
            "message": "The server had an error processing your request.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert not stream.done
    assert stream.finish_reasons == []
    call = fake_llm.calls[0]
    assert (call.tokens, call.text) == (3, stream.text)


async def test_error_after_tokens_without_stream_bills_the_tokens_and_answers_the_error(
    fake_llm: FakeLLM,
) -> None:
    fake_llm.script(f.error(502, after_tokens=4))
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert fake_llm.calls[0].tokens == 4


# -- reset ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_reset_before_headers_breaks_the_connection_without_a_response(
    fake_llm: FakeLLM, stream: bool
) -> None:
    fake_llm.script(f.reset())
    async with client(fake_llm) as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await http.post("/chat/completions", json=chat(stream=stream))

    call = fake_llm.calls[0]
    assert (call.status, call.headers_at, call.tokens, call.outcome) == (None, None, 0, "reset")
    assert call.finished and not call.disconnected


async def test_reset_after_tokens_delivers_the_tokens_then_breaks_the_stream(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.reset(after_tokens=5))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await stream.read()

    assert stream.response.status_code == 200
    assert len(stream.tokens) == 5
    assert not stream.done and stream.finish_reasons == []
    call = fake_llm.calls[0]
    assert (call.tokens, call.outcome, call.text) == (5, "reset", stream.text)


async def test_reset_after_tokens_without_stream_bills_them_and_sends_nothing(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.reset(after_tokens=5))
    async with client(fake_llm) as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await http.post("/chat/completions", json=chat())

    call = fake_llm.calls[0]
    assert (call.tokens, call.status, call.outcome) == (5, None, "reset")


# -- stall and hang --------------------------------------------------------------------------------


async def test_stall_sends_headers_and_tokens_then_nothing_until_the_client_leaves(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.stall(after_tokens=4))
    async with client(fake_llm) as http:
        async with open_stream(http, chat(), timeout=read_timeout(0.2)) as stream:
            await stream.read_tokens(4)
            with pytest.raises(httpx.ReadTimeout):
                await stream.next_event()
            gave_up_at = time.monotonic()  # httpx has closed the connection under the timed-out read

    assert stream.response.status_code == 200 and len(stream.tokens) == 4
    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the stalled call to end")
    assert (call.outcome, call.tokens) == ("disconnected", 4)
    assert call.disconnected_at is not None
    # The fake kept the connection open and silent for the client's whole 0.2 s read timeout
    # (httpx is never early; clock slack only) ...
    assert call.disconnected_at - call.token_times[-1] >= 0.2 - CLOCK_SLACK
    # ... and noticed the client leave within the product target of 100 ms (measured here from
    # just after the close; the disconnect tests in test_ledger_and_plan.py measure from before).
    assert call.disconnected_at - gave_up_at < 0.1


async def test_stall_without_stream_sends_headers_and_never_a_body(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.stall(after_tokens=2))
    async with client(fake_llm) as http:
        async with http.stream(
            "POST", "/chat/completions", json=chat(), timeout=read_timeout(0.2)
        ) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the stalled call to end")
    assert (call.tokens, call.outcome) == (2, "disconnected")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hang_never_sends_headers(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(f.hang())
    async with client(fake_llm, timeout=read_timeout(0.2)) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/chat/completions", json=chat(stream=stream))
        # The read timeout is what ended the wait: 0.2 s, minus nothing (httpx is never early),
        # plus generous room for a loaded machine.
        assert 0.2 - CLOCK_SLACK <= time.monotonic() - started < 0.2 + LOADED_MACHINE

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the hanging call to end")
    assert (call.status, call.headers_at, call.tokens, call.outcome) == (None, None, 0, "disconnected")


# -- drip ----------------------------------------------------------------------------------------


async def test_drip_sends_the_json_body_in_small_timed_pieces(fake_llm: FakeLLM) -> None:
    rate = 4000.0  # bytes per second: 200-byte pieces every 50 ms
    fake_llm.script(f.drip(rate, tokens=20))
    pieces: list[tuple[float, int]] = []
    data = b""
    async with client(fake_llm) as http:
        sent = time.monotonic()
        async with http.stream("POST", "/chat/completions", json=chat()) as response:
            async for piece in response.aiter_raw():
                pieces.append((time.monotonic(), len(piece)))
                data += piece

    size = len(data)
    assert size == int(response.headers["content-length"])
    assert json.loads(data)["choices"][0]["message"]["content"] == fake_llm.calls[0].text
    step = round(rate * DRIP_INTERVAL)
    assert max(n for _, n in pieces) <= step * 2  # never more than two pieces in one read
    # The last piece leaves after every earlier piece's share of time, (size - last piece) / rate
    # after the request (the fake sleeps after each piece): never sooner, clock slack only. Upper
    # bound: each of the few pieces may oversleep on a loaded machine, plus the thread hop.
    took = pieces[-1][0] - sent
    expected = (size - pieces[-1][1]) / rate
    assert expected - CLOCK_SLACK <= took <= expected + LOADED_MACHINE
    # Every piece follows the previous one within about twice the drip interval (0.05 s): 2x for a
    # busy scheduler, which delays a piece but does not hold back several.
    assert max(gaps([t for t, _ in pieces])) <= 2 * DRIP_INTERVAL


async def test_drip_ends_in_the_ledger_with_the_last_piece_and_notices_a_client_leaving(
    fake_llm: FakeLLM,
) -> None:
    rate = 2000.0  # bytes per second: 100-byte pieces every 50 ms
    fake_llm.script(f.drip(rate, tokens=20), f.drip(rate, tokens=20))
    async with client(fake_llm) as http:
        whole = await http.post("/chat/completions", json=chat())
        async with http.stream("POST", "/chat/completions", json=chat()) as response:
            async for _ in response.aiter_raw():
                leaving_at = time.monotonic()
                break  # an app whose total timeout runs out mid-drip: leaving the block closes

    size = len(whole.content)
    completed, left = await fake_llm.ledger.wait_for(
        lambda calls: len(calls) == 2 and calls[1].finished, what="the abandoned drip to end"
    )
    assert completed.outcome == "completed"
    assert completed.ended_at is not None and completed.headers_at is not None
    # The end is recorded as the last piece leaves: after every earlier piece's share of time
    # (never sooner than (size - 100) / rate, clock slack only).
    assert completed.ended_at - completed.headers_at >= (size - 100) / rate - CLOCK_SLACK
    assert left.outcome == "disconnected" and left.disconnected_at is not None
    # Product target: noticed within 100 ms of the client closing.
    assert 0 <= left.disconnected_at - leaving_at < 0.1


async def test_drip_stream_paces_every_event(fake_llm: FakeLLM) -> None:
    rate = 8000.0  # bytes per second: 400-byte pieces every 50 ms
    fake_llm.script(f.drip(rate, tokens=8))
    arrivals: list[float] = []
    data = b""
    async with client(fake_llm) as http:
        sent = time.monotonic()
        async with http.stream("POST", "/chat/completions", json=chat(stream=True)) as response:
            async for piece in response.aiter_raw():
                arrivals.append(time.monotonic())
                data += piece

    events = [line for line in data.decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    tokens = [
        json.loads(e.removeprefix("data: "))["choices"][0]["delta"].get("content") for e in events[1:-2]
    ]
    assert "".join(tokens) == fake_llm.calls[0].text
    # As above: every piece but the last ("data: [DONE]") costs its share of time, so the end
    # comes no sooner than (size - 14) / rate after the request (clock slack only); each event is
    # dripped on its own, so a dozen small oversleeps may add up on a loaded machine.
    took = arrivals[-1] - sent
    assert took >= (len(data) - len(b"data: [DONE]\n\n")) / rate - CLOCK_SLACK
    assert took <= len(data) / rate + LOADED_MACHINE
    # No gap between pieces is more than ~2 drip intervals (a busy scheduler delays a piece, it
    # does not hold back several).
    assert max(gaps(arrivals)) <= 2 * DRIP_INTERVAL


# -- cut -----------------------------------------------------------------------------------------


async def test_cut_stream_ends_cleanly_without_finish_chunk_or_done(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.cut(after_tokens=6))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()  # no error: the HTTP response itself ends properly

    assert len(stream.tokens) == 6
    assert not stream.done and stream.finish_reasons == []
    call = fake_llm.calls[0]
    assert (call.tokens, call.outcome, call.text) == (6, "cut", stream.text)


async def test_cut_json_body_is_shorter_than_its_content_length(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.cut(after_tokens=6))
    async with client(fake_llm) as http:
        async with http.stream("POST", "/chat/completions", json=chat()) as response:
            assert response.status_code == 200
            expected = int(response.headers["content-length"])
            received = b""
            with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
                async for piece in response.aiter_raw():
                    received += piece

    assert 0 < len(received) < expected
    call = fake_llm.calls[0]
    assert (call.tokens, call.outcome) == (6, "cut")


# -- malformed -----------------------------------------------------------------------------------


async def test_malformed_chunk_after_tokens_then_the_stream_goes_on(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.malformed(after_tokens=3, tokens=8))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    kinds = ["json" if e.is_json else "DONE" if e.data == "[DONE]" else "bad" for e in stream.events]
    # role chunk, 3 tokens, the bad line, 5 more tokens, finish chunk, [DONE]
    assert kinds == ["json"] * 4 + ["bad"] + ["json"] * 6 + ["DONE"]
    assert stream.events[4].data.startswith("{")  # it looks like JSON, as a broken proxy sends it
    assert len(stream.tokens) == 8 and stream.finish_reasons == ["stop"]
    assert fake_llm.calls[0].text == stream.text


async def test_malformed_json_answer_is_not_json(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.malformed())
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())

    assert response.status_code == 200
    assert response.text.startswith('{"id": "chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        response.json()


# -- endless -------------------------------------------------------------------------------------


async def test_endless_stream_goes_on_past_any_answer_until_the_client_leaves(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.endless(token_delay=0.001))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read_tokens(200)  # an answer has at most 64 tokens
        assert stream.finish_reasons == [] and not stream.done
        closing_at = time.monotonic()  # leaving the block closes the half-read response

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the endless call to end")
    assert call.outcome == "disconnected" and call.tokens >= 200
    assert call.text.startswith(stream.text[:100])
    # Product target: noticed within 100 ms of the client closing; not a token billed after that.
    assert call.disconnected_at is not None and 0 <= call.disconnected_at - closing_at < 0.1
    assert call.tokens_after(call.disconnected_at) == 0


# -- length --------------------------------------------------------------------------------------


async def test_length_fault_stops_after_n_tokens_with_finish_reason_length(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.length(after_tokens=7), f.length(after_tokens=7))
    async with client(fake_llm) as http:
        async with open_stream(http, chat()) as stream:
            await stream.read()
        response = await http.post("/chat/completions", json=chat())

    assert len(stream.tokens) == 7 and stream.finish_reasons == ["length"] and stream.done
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert body["choices"][0]["message"]["content"] == stream.text  # same prompt, same answer


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
async def test_request_max_tokens_cuts_the_answer_with_finish_reason_length(
    fake_llm: FakeLLM, limit: str
) -> None:
    async with client(fake_llm) as http:
        async with open_stream(http, chat(**{limit: 5})) as stream:
            await stream.read()
        response = await http.post("/chat/completions", json=chat(**{limit: 5}))
        full = await http.post("/chat/completions", json=chat())

    assert len(stream.tokens) == 5 and stream.finish_reasons == ["length"]
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert full.json()["choices"][0]["message"]["content"].startswith(stream.text)
    assert [c.tokens for c in fake_llm.calls] == [5, 5, full.json()["usage"]["completion_tokens"]]


# -- near-miss JSON --------------------------------------------------------------------------------


def _repair(style: str, content: str) -> str:
    """The obvious fix a careful app applies for each style."""
    if style == "fenced":
        match = re.fullmatch(r"```json\n(.*)\n```", content, re.DOTALL)
        assert match, content
        return match.group(1)
    if style == "prose":
        return content[content.index("{") : content.rindex("}") + 1]
    return re.sub(r",(\s*[}\]])", r"\1", content)


@pytest.mark.parametrize("style", ["fenced", "prose", "trailing_comma"])
async def test_near_miss_json_fails_json_loads_and_parses_after_the_obvious_repair(
    fake_llm: FakeLLM, style: str
) -> None:
    fake_llm.script(f.near_miss_json(style), f.near_miss_json(style))
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())
        async with open_stream(http, chat()) as stream:
            await stream.read()

    content = response.json()["choices"][0]["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    record = json.loads(_repair(style, content))
    assert set(record) == {"title", "year", "keywords"}
    assert stream.text == content  # streamed token by token, it is the same text


@pytest.mark.parametrize("style", ["fenced", "prose", "trailing_comma"])
async def test_near_miss_json_wraps_the_given_content(fake_llm: FakeLLM, style: str) -> None:
    fake_llm.script(f.near_miss_json(style, content='{"answer": [1, 2]}'))
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat())

    content = response.json()["choices"][0]["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert json.loads(_repair(style, content)) == {"answer": [1, 2]}



@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_a_request_asking_for_json_gets_a_paper_record_unless_the_content_is_set(
    fake_llm: FakeLLM, kind: str
) -> None:
    fake_llm.script(f.ok(), f.ok(), f.ok(content="Not JSON."))
    asks_json = chat(response_format={"type": kind})
    async with client(fake_llm) as http:
        record = await http.post("/chat/completions", json=asks_json)
        prose = await http.post("/chat/completions", json=chat(response_format={"type": "text"}))
        scripted = await http.post("/chat/completions", json=asks_json)

    def content(response: httpx.Response) -> str:
        return str(response.json()["choices"][0]["message"]["content"])

    prompt = fake_llm.calls[0].prompt
    assert json.loads(content(record)) == text.paper_record(prompt, fake_llm.plan.seed)
    with pytest.raises(json.JSONDecodeError):
        json.loads(content(prose))
    assert content(scripted) == "Not JSON."

# -- timing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_latency_delays_the_headers(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(f.ok(latency=0.2, tokens=3))
    async with client(fake_llm) as http:
        sent = time.monotonic()
        async with http.stream("POST", "/chat/completions", json=chat(stream=stream)) as response:
            headers_after = time.monotonic() - sent
            await response.aread()

    # Never early: the fake starts counting after the request arrived, which is after `sent`.
    assert headers_after >= 0.2 - CLOCK_SLACK
    # Late by at most a thread hop and loopback on a loaded 2-core machine.
    assert headers_after <= 0.2 + LOADED_MACHINE
    call = fake_llm.calls[0]
    assert call.headers_at is not None and call.headers_at - call.received_at >= 0.2 - CLOCK_SLACK


async def test_first_token_delays_the_first_token_after_the_headers(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(latency=0.05, first_token=0.2, tokens=3))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    first = stream.token_events[0].at - stream.sent_at
    # Never early: latency + first_token after the request was sent. Late by at most a thread hop
    # and loopback on a loaded machine.
    assert 0.25 - CLOCK_SLACK <= first <= 0.25 + LOADED_MACHINE
    # The headers (and the role chunk) do not wait for the first token.
    assert stream.headers_at - stream.sent_at <= 0.05 + LOADED_MACHINE
    assert stream.events[0].at < stream.token_events[0].at
    call = fake_llm.calls[0]
    # The ledger agrees: never early relative to the request's arrival.
    assert call.first_token_at is not None and call.first_token_at - call.received_at >= 0.25 - CLOCK_SLACK


async def test_first_token_without_stream_delays_the_whole_answer(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(first_token=0.2, token_delay=0.01, tokens=6))
    async with client(fake_llm) as http:
        sent = time.monotonic()
        response = await http.post("/chat/completions", json=chat())
        took = time.monotonic() - sent

    assert response.status_code == 200
    # A JSON answer is sent when its last token is "generated": first_token + 5 token delays.
    # Never early; late by at most a thread hop and loopback on a loaded machine.
    assert 0.25 - CLOCK_SLACK <= took <= 0.25 + LOADED_MACHINE


async def test_token_delay_paces_the_stream_against_the_clock(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(token_delay=0.03, tokens=8))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    arrivals = [e.at - stream.sent_at for e in stream.token_events]
    for i, at in enumerate(arrivals):
        # Token i is scheduled i * 0.03 s after the first; never early (clock slack only), and no
        # later than a loaded machine's hop. Scheduled against the clock, lateness does not add up.
        assert i * 0.03 - CLOCK_SLACK <= at <= i * 0.03 + LOADED_MACHINE, (i, arrivals)
    call = fake_llm.calls[0]
    for i, t in enumerate(call.token_times):
        assert t - call.received_at >= i * 0.03 - CLOCK_SLACK  # the ledger's times agree


async def test_jitter_varies_token_gaps_within_its_bound(fake_llm: FakeLLM) -> None:
    delay, jitter = 0.035, 0.025
    fake_llm.reset(seed=0)  # the draws are seeded: pin the seed this test's numbers are about
    fake_llm.script(f.ok(token_delay=delay, jitter=jitter, tokens=11))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    call = fake_llm.calls[0]
    for i, t in enumerate(call.token_times):
        # Each delay is drawn in [delay - jitter, delay + jitter] and tokens are scheduled against
        # the clock from the request's start: never early (clock slack only) ...
        assert t - call.received_at >= i * (delay - jitter) - CLOCK_SLACK
        # ... and, since lateness does not add up, no later than i * (delay + jitter) after the
        # first token plus one loaded machine's lateness.
        assert t - call.token_times[0] <= i * (delay + jitter) + LOADED_MACHINE
    # Seed 0 draws 10 delays from 14 ms to 55 ms (a 42 ms spread). Scheduling noise moves a gap
    # by a few ms, so the measured spread stays well above the 25 ms jitter; without jitter it
    # would be near zero.
    spread = gaps(call.token_times)
    assert max(spread) - min(spread) > jitter
    # The client sees the same pace: the last token no sooner than the ledger says it was made.
    assert len(stream.tokens) == 11
    assert stream.token_events[-1].at >= call.token_times[-1]

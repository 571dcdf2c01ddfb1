"""The official `openai` SDK as the client of the fake provider, over loopback.

What the issue asks of the fake: pointed at `fake_llm.base_url`, the real SDK parses plain and
streamed completions, maps our errors to its exception classes, and its own retry loop honours
our `Retry-After` / `retry-after-ms`. The SDK's behaviour asserted here was read from its source
(openai 3.x, `_base_client.py` and `_streaming.py`), not guessed:

- `_should_retry`: retries 408, 409, 429 and >= 500 (and connection errors and timeouts), never
  other 4xx; a server-directed delay over 120 s (`MAX_RETRY_AFTER_DELAY`) means "do not retry".
- `_calculate_retry_timeout`: `retry-after-ms` first, then `retry-after` (seconds, floats
  allowed), used as is when 0 < delay <= 120 s; otherwise `0.5 * 2**n` seconds less a random
  0-25 %, so the first default wait lies in (0.375, 0.5] s.
- `Stream.__stream__`: a `data: {"error": ...}` chunk raises `openai.APIError` from the iterator
  (a stream is never retried once its headers said 200); a transport error mid-stream raises
  `APIConnectionError`; the end of the body ends the iteration whether `[DONE]` came or not.

Every client here gets `max_retries=0` unless the test is about retries, so an error reaches the
test on the first call and the ledger holds exactly the calls the SDK made.
"""

from __future__ import annotations

import time
import typing

import pytest

openai = pytest.importorskip("openai")

from harness.fake_llm import FakeLLM  # noqa: E402
from harness.fake_llm import faults as f  # noqa: E402
from harness.fake_llm import wire  # noqa: E402

MODEL = "fake-large"
MESSAGES = [{"role": "user", "content": "Summarise the three abstracts in two sentences."}]

# Retry timing. The gap between two calls' `received_at` is the SDK's sleep plus the overhead of
# one round trip (the server answers the first call, the SDK parses it, the next request reaches
# our handler). Measured over 60 retries each: median 3 ms; worst 16 ms idle, 14 ms with one core
# busy, 46 ms with both cores busy; ~5 ms for the first request of a process. The sleep cannot
# be shorter than asked (time.sleep and anyio.sleep never wake early) and the first `received_at`
# is taken before the first answer left, so the lower bounds are exact. The upper bound allows
# 0.07 s of overhead: above the worst seen even with both cores busy, and small enough that
# 0.3 s + 0.07 s stays below 0.375 s, the shortest wait the SDK's own backoff can choose, so a
# pass proves the wait came from our header and not from the SDK's default.
RETRY_OVERHEAD = 0.07
DEFAULT_BACKOFF = (0.375, 0.5)  # the SDK's first wait without a header: 0.5 s less 0-25 %


def sdk(base_url: str, *, api_key: str = "sk-test", max_retries: int = 0) -> typing.Any:
    """The SDK's client as an app builds it, with the SDK's own HTTP client class and defaults.

    Only `verify=False` differs: the fake is plain HTTP on loopback, so no certificate is ever
    checked, and loading the CA bundle costs ~20 ms per client, a third of this file's runtime.
    """
    http_client = openai.DefaultHttpxClient(verify=False)
    return openai.OpenAI(
        base_url=base_url, api_key=api_key, max_retries=max_retries, http_client=http_client
    )


def async_sdk(base_url: str, *, max_retries: int = 0) -> typing.Any:
    http_client = openai.DefaultAsyncHttpxClient(verify=False)
    return openai.AsyncOpenAI(
        base_url=base_url, api_key="sk-test", max_retries=max_retries, http_client=http_client
    )


@pytest.fixture
def client(fake_llm: FakeLLM) -> typing.Iterator[typing.Any]:
    """A synchronous SDK client on the fake, without retries."""
    with sdk(fake_llm.base_url) as client:
        yield client


def ask(client: typing.Any, **kwargs: typing.Any) -> typing.Any:
    model = kwargs.pop("model", MODEL)
    return client.chat.completions.create(model=model, messages=MESSAGES, **kwargs)


def retrying(client: typing.Any) -> typing.Any:
    """The same client with the SDK's default retry budget (2) instead of none."""
    return client.with_options(max_retries=2)


def delta_text(chunks: list[typing.Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- answers parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kwargs", "finish_reason", "tokens"),
    [
        (None, {}, "stop", None),
        (f.length(after_tokens=4), {}, "length", 4),
        (None, {"max_completion_tokens": 5}, "length", 5),
    ],
    ids=["stop", "length-fault", "max_completion_tokens"],
)
def test_a_plain_completion_parses_and_matches_the_ledger(
    fake_llm: FakeLLM,
    client: typing.Any,
    fault: f.Fault | None,
    kwargs: dict[str, typing.Any],
    finish_reason: str,
    tokens: int | None,
) -> None:
    if fault is not None:
        fake_llm.script(fault)
    completion = ask(client, **kwargs)
    [call] = fake_llm.calls
    choice = completion.choices[0]
    assert (call.stream, call.status, call.outcome) == (False, 200, "completed")
    assert choice.message.role == "assistant"
    assert choice.message.content == call.text != ""
    assert choice.finish_reason == finish_reason
    assert completion.model == MODEL
    assert completion.id == f"chatcmpl-ff{call.id:06d}"
    assert completion.usage.completion_tokens == call.tokens == (tokens or call.tokens)
    assert completion.usage.prompt_tokens == call.prompt_tokens > 0
    assert completion.usage.total_tokens == call.prompt_tokens + call.tokens


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "include_usage"])
def test_a_stream_parses_and_matches_the_ledger(
    fake_llm: FakeLLM, client: typing.Any, include_usage: bool
) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with ask(client, stream=True, **extra) as stream:
        chunks = list(stream)
    [call] = fake_llm.calls
    assert (call.stream, call.status, call.outcome) == (True, 200, "completed")
    assert delta_text(chunks) == call.text != ""
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == call.tokens
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    finishes = [reason for reason in finishes if reason]
    assert finishes == ["stop"]
    assert {c.model for c in chunks} == {MODEL}
    assert {c.id for c in chunks} == {f"chatcmpl-ff{call.id:06d}"}
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        # One usage chunk, the last, with no choices: what the SDK documents for include_usage.
        assert with_usage == [chunks[-1]]
        assert chunks[-1].choices == []
        usage = chunks[-1].usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (call.prompt_tokens, call.tokens)
        assert usage.total_tokens == call.prompt_tokens + call.tokens
    else:
        assert with_usage == []


@pytest.mark.anyio
async def test_the_async_client_streams(fake_llm: FakeLLM) -> None:
    async with async_sdk(fake_llm.base_url) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            chunks = [chunk async for chunk in stream]
    [call] = fake_llm.calls
    assert call.stream and call.outcome == "completed"
    assert call.request_headers.get("x-stainless-async", "").startswith("async")
    assert delta_text(chunks) == call.text != ""
    assert chunks[-1].usage.completion_tokens == call.tokens


def test_a_cut_stream_ends_quietly_in_the_sdk(fake_llm: FakeLLM, client: typing.Any) -> None:
    """The SDK does not notice a stream that ends without its finish chunk and `[DONE]`: an app
    must look at `finish_reason` itself. Scenarios built on `cut` rely on this."""
    fake_llm.script(f.cut(after_tokens=3))
    with ask(client, stream=True) as stream:
        chunks = list(stream)
    [call] = fake_llm.calls
    assert (call.tokens, call.outcome) == (3, "cut")
    assert delta_text(chunks) == call.text
    assert all(c.choices[0].finish_reason is None for c in chunks)


# -- errors map to the SDK's exception classes -----------------------------------------------------

STATUS_ERRORS = [
    (400, "BadRequestError"),
    (401, "AuthenticationError"),
    (403, "PermissionDeniedError"),
    (404, "NotFoundError"),
    (408, "APIStatusError"),  # the SDK has no class of its own for 408: the base class
    (409, "ConflictError"),
    (422, "UnprocessableEntityError"),
    (429, "RateLimitError"),
    (500, "InternalServerError"),
    (502, "InternalServerError"),
    (503, "InternalServerError"),
    (529, "InternalServerError"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("status", "class_name"), STATUS_ERRORS, ids=[str(s) for s, _ in STATUS_ERRORS]
)
def test_a_status_error_raises_the_sdk_class_with_our_body(
    fake_llm: FakeLLM, client: typing.Any, status: int, class_name: str, stream: bool
) -> None:
    message = f"faultfirst says {status}"
    fake_llm.script(f.error(status, message=message))
    with pytest.raises(openai.APIStatusError) as raised:
        ask(client, stream=stream)
    [call] = fake_llm.calls
    error = raised.value
    assert type(error) is getattr(openai, class_name)
    assert error.status_code == status == call.status
    assert error.message == f"Error code: {status} - {message}"
    expected = wire.error_body(status, message)["error"]
    assert error.body == expected
    assert (error.code, error.type) == (expected["code"], expected["type"])
    assert error.request_id == f"chatcmpl-ff{call.id:06d}"


def test_an_unknown_model_is_not_found(fake_llm: FakeLLM, client: typing.Any) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        ask(client, model="gpt-nonexistent")
    assert "`gpt-nonexistent` does not exist" in raised.value.message
    assert raised.value.code == "model_not_found"
    [call] = fake_llm.calls
    assert (call.status, call.outcome) == (404, "rejected")


def test_a_request_without_messages_is_a_bad_request(fake_llm: FakeLLM, client: typing.Any) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[])
    assert "'messages' must be a non-empty array" in raised.value.message
    [call] = fake_llm.calls
    assert (call.status, call.outcome) == (400, "rejected")


def test_a_wrong_api_key_is_an_authentication_error() -> None:
    with FakeLLM(api_key="sk-right") as fake:
        with sdk(fake.base_url, api_key="sk-wrong") as wrong:
            with pytest.raises(openai.AuthenticationError) as raised:
                ask(wrong)
        with sdk(fake.base_url, api_key="sk-right") as right:
            completion = ask(right)
        assert raised.value.message == "Error code: 401 - Incorrect API key provided."
        assert raised.value.code == "invalid_api_key"
        assert [c.status for c in fake.calls] == [401, 200]
        assert completion.choices[0].message.content == fake.calls[1].text
        assert "authorization" not in fake.calls[1].request_headers  # the ledger keeps no key


def test_a_reset_before_the_headers_is_a_connection_error(
    fake_llm: FakeLLM, client: typing.Any
) -> None:
    fake_llm.script(f.reset())
    with pytest.raises(openai.APIConnectionError) as raised:
        ask(client)
    assert type(raised.value) is openai.APIConnectionError  # not its subclass APITimeoutError
    [call] = fake_llm.calls
    assert (call.status, call.outcome) == (None, "reset")


def test_a_reset_mid_stream_raises_from_the_iterator(fake_llm: FakeLLM, client: typing.Any) -> None:
    fake_llm.script(f.reset(after_tokens=3))
    chunks: list[typing.Any] = []
    with ask(retrying(client), stream=True) as stream:
        with pytest.raises(openai.APIConnectionError) as raised:
            for chunk in stream:
                chunks.append(chunk)
    assert type(raised.value) is openai.APIConnectionError
    [call] = fake_llm.calls  # a stream that started is never retried by the SDK
    assert (call.status, call.tokens, call.outcome) == (200, 3, "reset")
    assert delta_text(chunks) == call.text


def test_a_hang_with_a_short_sdk_timeout_is_a_timeout_error(
    fake_llm: FakeLLM, client: typing.Any
) -> None:
    fake_llm.script(f.hang())
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=0.2))
    # The SDK's read timeout cannot fire before 0.2 s; 2 s is an upper bound only to show it did
    # not wait for the default 600 s (a loaded machine adds milliseconds, not seconds).
    assert 0.2 <= time.monotonic() - started < 2.0
    # The SDK closes the connection on timeout and the fake notices the client gone.
    [call] = fake_llm.ledger.wait_for_sync(
        lambda calls: len(calls) == 1 and calls[0].disconnected,
        timeout=2,
        what="the hung call marked disconnected",
    )
    assert (call.status, call.tokens, call.outcome) == (None, 0, "disconnected")


# -- the SDK's own retry honours our headers -------------------------------------------------------


def _gap(fake: FakeLLM) -> float:
    first, second = fake.calls
    return second.received_at - first.received_at


@pytest.mark.parametrize(
    ("fault", "wait"),
    [
        (f.error(429, retry_after=0.3), 0.3),
        (f.error(429, retry_after_ms=250), 0.25),
        # retry-after-ms wins when both are sent: _parse_retry_after_header reads it first.
        (f.error(503, retry_after=5, retry_after_ms=250), 0.25),
    ],
    ids=["retry-after", "retry-after-ms", "ms-wins"],
)
def test_the_sdk_retry_waits_as_our_header_says(
    fake_llm: FakeLLM, client: typing.Any, fault: f.Fault, wait: float
) -> None:
    fake_llm.script(fault)
    completion = ask(retrying(client))
    first, second = fake_llm.calls
    assert (first.status, second.status) == (fault.status, 200)
    assert completion.choices[0].message.content == second.text
    assert [c.request_headers.get("x-stainless-retry-count") for c in (first, second)] == ["0", "1"]
    # Bounds and tolerance: see RETRY_OVERHEAD at the top of the file.
    assert wait <= _gap(fake_llm) < wait + RETRY_OVERHEAD


@pytest.mark.anyio
async def test_the_async_sdk_retry_waits_as_our_header_says(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.error(429, retry_after=0.3))
    async with async_sdk(fake_llm.base_url, max_retries=2) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        async with stream:
            chunks = [chunk async for chunk in stream]
    first, second = fake_llm.calls
    assert (first.status, second.status) == (429, 200)
    assert delta_text(chunks) == second.text
    # Bounds and tolerance: see RETRY_OVERHEAD at the top of the file.
    assert 0.3 <= _gap(fake_llm) < 0.3 + RETRY_OVERHEAD


def test_without_a_header_the_sdk_uses_its_own_backoff(
    fake_llm: FakeLLM, client: typing.Any
) -> None:
    fake_llm.script(f.error(503))
    ask(retrying(client))
    assert [c.status for c in fake_llm.calls] == [503, 200]
    low, high = DEFAULT_BACKOFF
    # The SDK draws its first wait from (0.375, 0.5] s; the same RETRY_OVERHEAD on top.
    assert low <= _gap(fake_llm) < high + RETRY_OVERHEAD


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529])
def test_the_sdk_retries_these_statuses(fake_llm: FakeLLM, client: typing.Any, status: int) -> None:
    fake_llm.script(f.error(status, retry_after_ms=1))  # 1 ms: retried at once, the test stays fast
    ask(retrying(client))
    assert [c.status for c in fake_llm.calls] == [status, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_the_sdk_does_not_retry_a_client_error(
    fake_llm: FakeLLM, client: typing.Any, status: int
) -> None:
    fake_llm.script(f.error(status, retry_after_ms=1))
    with pytest.raises(openai.APIStatusError) as raised:
        ask(retrying(client))
    assert raised.value.status_code == status
    assert [c.status for c in fake_llm.calls] == [status]
    assert fake_llm.plan.remaining() == 0


def test_a_retry_after_over_two_minutes_stops_the_sdk_retrying(
    fake_llm: FakeLLM, client: typing.Any
) -> None:
    fake_llm.script(f.error(429, retry_after=121))
    with pytest.raises(openai.RateLimitError):
        ask(retrying(client))
    assert [c.status for c in fake_llm.calls] == [429]


def test_an_error_chunk_mid_stream_is_raised_by_the_iterator_and_not_retried(
    fake_llm: FakeLLM, client: typing.Any
) -> None:
    fake_llm.script(f.error(500, after_tokens=3, message="generation failed"))
    chunks: list[typing.Any] = []
    stream = ask(retrying(client), stream=True)
    with stream:  # the headers said 200: create() returned, the error comes while iterating
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream:
                chunks.append(chunk)
    error = raised.value
    assert not isinstance(error, (openai.APIStatusError, openai.APIConnectionError))
    assert error.message == "generation failed"
    assert error.body == wire.error_body(500, "generation failed")["error"]
    [call] = fake_llm.calls
    assert (call.status, call.tokens) == (200, 3)
    assert delta_text(chunks) == call.text

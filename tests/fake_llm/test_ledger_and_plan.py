"""The ledger (what the fake saw and did, including clients that left) and the fault plan (which
fault each request gets: scripts, standing rules, seeded profiles), plus the errors a scenario
author meets when a fault makes no sense."""

from __future__ import annotations

import json
import math
import statistics
import time

import httpx
import pytest

from harness import plugin
from harness.fake_llm import DEFAULT_MODELS, FakeLLM, Fault, FaultError
from harness.fake_llm import faults as f
from harness.fake_llm.ledger import Call, peak_concurrency
from harness.fake_llm.plan import FaultPlan

from .helpers import (
    MODEL,
    OTHER_MODEL,
    abandon_once_received,
    chat,
    client,
    open_stream,
    wait_for_one_call,
)

pytestmark = pytest.mark.anyio

# The product target for noticing that a client went away, mid-stream or before the first byte.
DETECTION_TARGET = 0.1


# -- disconnect detection --------------------------------------------------------------------------


async def test_a_client_leaving_mid_stream_is_noticed_and_billing_stops(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(token_delay=0.1, tokens=40))
    async with client(fake_llm) as http:
        async with open_stream(http, chat()) as stream:
            await stream.read_tokens(2)
            closing_at = time.monotonic()  # leaving the block closes the half-read response

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the abandoned stream to end")
    assert call.outcome == "disconnected"
    assert call.disconnected_at is not None
    # Product target: the ledger marks the client gone within 100 ms of its closing.
    assert 0 <= call.disconnected_at - closing_at < DETECTION_TARGET
    # Nothing is generated once the fake knows. Between the client's close and the fake's noticing
    # (< 100 ms, asserted above) at most one token can be in flight at one token per 100 ms.
    assert call.tokens_after(call.disconnected_at) == 0
    assert call.tokens_after(closing_at) <= 1
    assert 2 <= call.tokens <= 3


async def test_a_client_leaving_while_the_fake_thinks_before_a_json_answer_is_noticed(
    fake_llm: FakeLLM,
) -> None:
    fake_llm.script(f.ok(first_token=5))
    async with client(fake_llm) as http:
        closing_at = await abandon_once_received(
            fake_llm, lambda: http.post("/chat/completions", json=chat())
        )

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the abandoned request to end")
    assert (call.outcome, call.status, call.headers_at, call.tokens) == ("disconnected", None, None, 0)
    assert call.disconnected_at is not None
    # Product target: noticed within 100 ms although not a byte had been sent (a non-streaming
    # handler is not cancelled by the server: the fake watches the connection itself).
    assert 0 <= call.disconnected_at - closing_at < DETECTION_TARGET


async def test_a_client_leaving_during_latency_before_a_stream_is_noticed(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(latency=5))

    async with client(fake_llm) as http:

        async def stream_it() -> None:
            async with open_stream(http, chat()) as stream:
                await stream.read()

        closing_at = await abandon_once_received(fake_llm, stream_it)

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the abandoned stream to end")
    assert (call.outcome, call.status, call.headers_at, call.tokens) == ("disconnected", None, None, 0)
    assert call.disconnected_at is not None
    # Product target: within 100 ms, before the headers as after them.
    assert 0 <= call.disconnected_at - closing_at < DETECTION_TARGET


async def test_a_client_leaving_while_a_json_answer_is_generated_stops_the_billing(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(token_delay=0.1, tokens=40))
    async with client(fake_llm) as http:
        closing_at = await abandon_once_received(
            fake_llm, lambda: http.post("/chat/completions", json=chat()), when=lambda c: c.tokens >= 2
        )

    call = await wait_for_one_call(fake_llm, lambda c: c.finished, "the abandoned request to end")
    assert call.outcome == "disconnected" and call.disconnected_at is not None
    # Product target: within 100 ms; at one token per 100 ms, at most one token in flight.
    assert 0 <= call.disconnected_at - closing_at < DETECTION_TARGET
    assert call.tokens_after(closing_at) <= 1
    assert call.tokens_after(call.disconnected_at) == 0
    assert call.headers_at is None and 2 <= call.tokens <= 3


# -- what the ledger records -----------------------------------------------------------------------


async def test_every_request_is_recorded_with_its_fault_status_times_and_tokens(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(tokens=5), f.error(429, retry_after=1), f.length(after_tokens=4))
    secret_headers = {
        "Authorization": "Bearer sk-secret",
        "api-key": "k1",
        "x-api-key": "k2",
        "Cookie": "s=1",
    }
    async with client(fake_llm, headers={**secret_headers, "X-Trace-Id": "trace-7"}) as http:
        json_answer = await http.post("/chat/completions", json=chat())
        await http.post("/chat/completions", json=chat(model=OTHER_MODEL))
        async with open_stream(http, chat("A longer prompt, about sparse attention and latency.")) as stream:
            await stream.read()

    plain, limited, streamed = fake_llm.calls
    assert [c.id for c in fake_llm.calls] == sorted({c.id for c in fake_llm.calls})
    assert [(c.model, c.stream, c.fault, c.status, c.outcome, c.tokens) for c in fake_llm.calls] == [
        (MODEL, False, "ok", 200, "completed", 5),
        (OTHER_MODEL, False, "error 429 (retry-after: 1)", 429, "completed", 0),
        (MODEL, True, "length after 4 tokens", 200, "completed", 4),
    ]
    assert fake_llm.ledger.tokens_billed == 9
    assert plain.prompt == "user: " + chat()["messages"][0]["content"]
    assert plain.prompt_tokens == json_answer.json()["usage"]["prompt_tokens"] > 0
    assert streamed.prompt_tokens > plain.prompt_tokens
    assert streamed.text == stream.text and not any(c.disconnected for c in fake_llm.calls)

    # A JSON answer is generated before its headers go out; a stream sends them first.
    assert plain.headers_at is not None and plain.ended_at is not None
    assert (
        plain.received_at
        <= plain.token_times[0]
        <= plain.token_times[-1]
        <= plain.headers_at
        <= plain.ended_at
    )
    assert streamed.headers_at is not None and streamed.ended_at is not None
    assert streamed.received_at <= streamed.headers_at <= streamed.token_times[0]
    assert streamed.token_times == sorted(streamed.token_times) and len(streamed.token_times) == 4
    assert streamed.token_times[-1] <= streamed.ended_at
    assert plain.ended_at <= limited.received_at and limited.ended_at <= streamed.received_at  # type: ignore[operator]

    for call in fake_llm.calls:
        assert call.request_headers["x-trace-id"] == "trace-7"
        assert not {"authorization", "api-key", "x-api-key", "cookie"} & set(call.request_headers)


async def test_the_ledger_is_never_behind_what_the_client_has_seen(fake_llm: FakeLLM) -> None:
    # A scenario asserts on the ledger right after its client got something; the fake records
    # status, tokens and the end before the bytes leave, so this never races. 60 rounds: a fake
    # that records after sending was caught here in about one round in six.
    async with client(fake_llm) as http:
        for _ in range(60):
            fake_llm.reset()
            fake_llm.script(f.stall(after_tokens=3), f.ok(tokens=3))
            async with open_stream(http, chat()) as stream:
                assert fake_llm.calls[0].status == 200  # the client has the headers
                await stream.read_tokens(3)
                assert fake_llm.calls[0].tokens >= 3
            await http.post("/chat/completions", json=chat())
            assert fake_llm.calls[1].finished  # the client has the whole body


async def test_rejected_requests_are_recorded_as_rejected(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        await http.post("/chat/completions", json=chat(model="gpt-nonexistent"))
        await http.post(
            "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )

    unknown, garbled = fake_llm.calls
    assert (unknown.outcome, unknown.status, unknown.fault, unknown.tokens) == (
        "rejected",
        404,
        "none",
        0,
    )
    assert "gpt-nonexistent" in unknown.text  # the reason given to the client
    assert (garbled.outcome, garbled.status) == ("rejected", 400)
    assert all(c.finished and c.received_at <= c.ended_at for c in fake_llm.calls)  # type: ignore[operator]


async def test_to_json_gives_times_relative_to_the_ledger_start(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.ok(tokens=3))
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read()

    ledger = fake_llm.ledger
    data = json.loads(json.dumps(ledger.to_json()))  # plain JSON data, nothing exotic
    [call_json] = data["calls"]
    [call] = fake_llm.calls
    # `started_at` is the wall clock when the ledger began, so a report can put a date on it.
    assert abs(data["started_at"] - (time.time() - (time.monotonic() - ledger.started_at))) < 1
    for name in ("received_at", "headers_at", "ended_at"):
        assert call_json[name] == pytest.approx(getattr(call, name) - ledger.started_at, abs=1e-6)
    assert call_json["token_times"] == pytest.approx(
        [t - ledger.started_at for t in call.token_times], abs=1e-6
    )
    assert call_json["disconnected_at"] is None and call_json["disconnected"] is False
    assert (call_json["model"], call_json["stream"], call_json["fault"], call_json["tokens"]) == (
        MODEL,
        True,
        "ok",
        3,
    )
    assert call_json["text"] == stream.text


def test_peak_concurrency_counts_the_calls_in_flight_at_once() -> None:
    def call(received_at: float, ended_at: float | None) -> Call:
        return Call(1, MODEL, False, "", "ok", received_at, ended_at=ended_at)

    assert peak_concurrency([]) == 0
    one_after_another = [call(0, 1), call(1, 2), call(2, 3)]  # an end, then the next start
    assert peak_concurrency(one_after_another) == 1
    assert peak_concurrency([call(0, 3), call(1, 2), call(1.5, 4), call(3.5, 5)]) == 3
    assert peak_concurrency([call(0, None), call(5, 6)]) == 2  # a call still going counts


async def test_wait_for_says_what_it_waited_for_and_what_the_ledger_has(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        await http.post("/chat/completions", json=chat())
    with pytest.raises(
        TimeoutError, match=r"waited 0.05s for two calls; the ledger has: #\d+ fake-large ok -> 200 completed"
    ):
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 2, timeout=0.05, what="two calls")


async def test_reset_forgets_everything_and_stops_responses_still_playing(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.stall(after_tokens=1), f.error(503))
    fake_llm.always(f.error(500))
    fake_llm.use_profile("outage")
    async with client(fake_llm) as http, open_stream(http, chat()) as stream:
        await stream.read_tokens(1)
        fake_llm.reset()
        assert fake_llm.calls == [] and fake_llm.plan.remaining() == 0
        assert fake_llm.plan.profile == "instant"
        # The stalled response is aborted: its connection closes mid-body.
        with pytest.raises(httpx.RemoteProtocolError):
            await stream.read()
        reply = await http.post("/chat/completions", json=chat())

    assert reply.status_code == 200  # no script, no rule, no outage any more
    assert [c.fault for c in fake_llm.calls] == ["ok"]


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_the_fixture_gives_every_test_a_clean_fake(
    fake_llm: FakeLLM, pytestconfig: pytest.Config, turn: str
) -> None:
    # Whichever of the two runs second on this worker would see the first's leftovers.
    assert fake_llm.calls == [] and len(fake_llm.ledger) == 0
    assert fake_llm.plan.remaining() == 0 and fake_llm.plan.profile == "instant"
    assert fake_llm.plan.seed == plugin.settings(pytestconfig).seed
    async with client(fake_llm) as http:
        assert (await http.post("/chat/completions", json=chat())).status_code == 200
    # Leave a mess behind.
    fake_llm.script(f.error(503), f.error(503))
    fake_llm.always(f.hang())
    fake_llm.use_profile("outage", seed=99)


# -- the plan: scripts, rules, profiles ------------------------------------------------------------


async def test_scripted_faults_are_used_once_each_in_order_then_the_default(fake_llm: FakeLLM) -> None:
    fake_llm.script(f.error(503), f.error(429, retry_after=0.2), f.ok(tokens=3))
    assert fake_llm.plan.remaining() == 3
    async with client(fake_llm) as http:
        statuses = [(await http.post("/chat/completions", json=chat())).status_code for _ in range(4)]

    assert statuses == [503, 429, 200, 200]
    assert [c.fault for c in fake_llm.calls] == ["error 503", "error 429 (retry-after: 0.2)", "ok", "ok"]
    assert [c.tokens for c in fake_llm.calls][2] == 3
    assert fake_llm.plan.remaining() == 0


def test_older_scripts_come_first_then_always_rules_newest_first() -> None:
    plan = FaultPlan(models=DEFAULT_MODELS)
    plan.always(f.error(500))
    plan.always(f.error(502), prompt_contains="urgent")
    plan.script([f.error(503)])
    plan.script([f.error(504), f.error(529)])

    statuses = [plan.next_fault(MODEL, prompt)[0].status for prompt in ["a", "b", "c", "urgent d", "e"]]
    assert statuses == [503, 504, 529, 502, 500]


def test_scripts_and_rules_narrowed_to_a_model_or_a_prompt() -> None:
    plan = FaultPlan(models=DEFAULT_MODELS)
    plan.script([f.error(503)], model=OTHER_MODEL)
    plan.script([f.error(429)], prompt_contains="summarise")
    plan.always(f.error(500), model=OTHER_MODEL, prompt_contains="translate")

    def kind(model: str, prompt: str) -> str:
        return plan.next_fault(model, prompt)[0].describe()

    assert kind(MODEL, "hello") == "ok"  # the fake-small script does not touch fake-large
    assert kind(MODEL, "please summarise") == "error 429"
    assert kind(MODEL, "please summarise") == "ok"  # used up
    assert kind(OTHER_MODEL, "translate this") == "error 503"  # the script before the rule
    assert kind(OTHER_MODEL, "translate this") == "error 500"
    assert kind(OTHER_MODEL, "something else") == "ok"
    assert kind(MODEL, "translate this") == "ok"


async def test_model_narrowing_over_http(fake_llm: FakeLLM) -> None:
    fake_llm.always(f.error(503), model=MODEL)
    async with client(fake_llm) as http:
        down = await http.post("/chat/completions", json=chat(model=MODEL))
        up = await http.post("/chat/completions", json=chat(model=OTHER_MODEL))
    assert (down.status_code, up.status_code) == (503, 200)


def _draws(seed: int, requests: list[str], profile: str = "realistic") -> list[Fault]:
    plan = FaultPlan(models=DEFAULT_MODELS, seed=seed, profile=profile)
    return [plan.next_fault(model, "prompt")[0] for model in requests]


def test_profile_draws_repeat_for_a_seed_and_differ_for_another() -> None:
    requests = [MODEL, OTHER_MODEL, MODEL, MODEL, OTHER_MODEL] * 20
    assert _draws(7, requests) == _draws(7, requests)
    assert _draws(7, requests) != _draws(8, requests)
    # A model's draws depend on its own request count, not on the other model's traffic.
    assert [x for m, x in zip(requests, _draws(7, requests), strict=True) if m == MODEL] == _draws(
        7, [MODEL] * 60
    )


def test_realistic_profile_has_a_long_tail_and_a_few_percent_errors() -> None:
    draws = _draws(0, [MODEL] * 4000)
    first_tokens = [x.first_token for x in draws if x.kind == "ok"]
    median = statistics.median(first_tokens)
    p90 = statistics.quantiles(first_tokens, n=10)[-1]
    # Designed as median 0.5 s and P90 about 10x the median; 4000 draws of seed 0 give 0.53 s and
    # 9.7x (seeds 0-3 all give 9.3x-10.2x). The bounds allow for sampling, not for a wrong shape.
    assert 0.4 < median < 0.6
    assert 8 < p90 / median < 12
    errors = [x for x in draws if x.kind != "ok"]
    # About 4% transient failures: 429 with Retry-After, 5xx, connection resets.
    assert 0.02 < len(errors) / len(draws) < 0.06
    assert {x.kind for x in errors} == {"error", "reset"}
    assert {x.status for x in errors if x.kind == "error"} == {429, 500, 503, 529}
    assert all(x.headers == {"retry-after": "1"} for x in errors if x.status == 429)
    assert all(
        x.token_delay > 0 and x.jitter > 0 and math.isfinite(x.first_token) for x in draws if x.kind == "ok"
    )


def test_outage_profile_takes_down_the_first_model_only() -> None:
    assert {x.describe() for x in _draws(0, [MODEL] * 50, "outage")} == {"error 503"}
    assert {x.kind for x in _draws(0, [OTHER_MODEL] * 50, "outage")} == {"ok"}


async def test_outage_over_http(fake_llm: FakeLLM) -> None:
    fake_llm.use_profile("outage")
    async with client(fake_llm) as http:
        down = await http.post("/chat/completions", json=chat(model=MODEL))
        # The other model is "calm": 0.3 s to the first token; two tokens keep it short.
        up = await http.post("/chat/completions", json=chat(model=OTHER_MODEL, max_tokens=2))
    assert down.status_code == 503
    assert down.json()["error"]["message"] == f"The model {MODEL} is currently overloaded."
    assert up.status_code == 200


async def test_answers_are_deterministic_for_prompt_model_and_seed(fake_llm: FakeLLM) -> None:
    async def answer(
        http: httpx.AsyncClient, prompt: str = "What do the papers say?", model: str = MODEL
    ) -> str:
        reply = await http.post("/chat/completions", json=chat(prompt, model=model))
        return str(reply.json()["choices"][0]["message"]["content"])

    async with client(fake_llm) as http:
        first = await answer(http)
        assert await answer(http) == first
        assert await answer(http, model=OTHER_MODEL) != first
        assert await answer(http, prompt="Something else entirely?") != first
        async with open_stream(http, chat("What do the papers say?")) as stream:
            await stream.read()
        assert stream.text == first
        seed = fake_llm.plan.seed
        fake_llm.reset(seed=seed + 1)
        other_seed = await answer(http)
        fake_llm.reset(seed=seed)
        again = await answer(http)

    assert other_seed != first
    assert again == first


# -- nonsense is refused where it is written -------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: f.ok(latency=-0.5),
            r"ok: latency must be a number of seconds >= 0, got -0\.5",
            id="negative latency",
        ),
        pytest.param(
            lambda: f.ok(token_delay="fast"),
            r"token_delay must be a number of seconds >= 0, got 'fast'",
            id="delay not a number",
        ),
        pytest.param(
            lambda: f.stall(after_tokens=-1),
            r"stall: after_tokens must be a whole number >= 0, got -1",
            id="negative after_tokens",
        ),
        pytest.param(lambda: f.ok(tokens=0), r"tokens must be a whole number >= 1, got 0", id="no tokens"),
        pytest.param(
            lambda: f.error(200), r"error: status must be an HTTP error \(400-599\), got 200", id="error 200"
        ),
        pytest.param(
            lambda: f.error(429, retry_after=-1),
            r"a retry delay must be >= 0, got -1",
            id="negative retry-after",
        ),
        pytest.param(lambda: f.drip(0), r"drip: bytes_per_second must be > 0, got 0", id="drip 0"),
        pytest.param(
            lambda: f.near_miss_json("weird"),
            r"style must be one of fenced, prose, trailing_comma, got 'weird'",
            id="json style",
        ),
        pytest.param(lambda: Fault("cut"), r"cut: after_tokens is required", id="cut without after_tokens"),
        pytest.param(
            lambda: Fault("ok", status=500), r"ok: only an error fault sets a status", id="status on ok"
        ),
        pytest.param(
            lambda: Fault.from_dict({"kind": "explode"}),
            r"unknown fault 'explode'; known: ok, error, reset",
            id="unknown kind",
        ),
        pytest.param(
            lambda: Fault.from_dict({"kind": "ok", "latncy": 1}),
            r"unknown fault field\(s\) \['latncy'\]; known: \[",
            id="unknown field",
        ),
        pytest.param(
            lambda: Fault.from_dict({"kind": "error", "status": "503"}),
            r"status must be an HTTP error \(400-599\), got '503'",
            id="status as text",
        ),
        pytest.param(
            lambda: Fault.from_dict({"kind": "drip", "bytes_per_second": "fast"}),
            r"bytes_per_second must be > 0, got 'fast'",
            id="rate as text",
        ),
    ],
)
def test_a_fault_that_makes_no_sense_fails_where_it_is_built(build: object, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        build()  # type: ignore[operator]


def test_a_misspelt_timing_keyword_fails_naming_it() -> None:
    with pytest.raises(TypeError, match="latncy"):
        f.ok(latncy=0.2)


def test_the_plan_refuses_unknown_models_profiles_and_non_faults(fake_llm: FakeLLM) -> None:
    with pytest.raises(FaultError, match=r"unknown model 'gpt-4o'; the fake serves: fake-large, fake-small"):
        fake_llm.script(f.error(503), model="gpt-4o")
    with pytest.raises(FaultError, match="unknown model 'gpt-4o'"):
        fake_llm.always(f.error(503), model="gpt-4o")
    with pytest.raises(FaultError, match=r"unknown profile 'chaos'; known: instant, calm, realistic, outage"):
        fake_llm.use_profile("chaos")
    with pytest.raises(FaultError, match="unknown profile 'chaos'"):
        FakeLLM(profile="chaos")
    with pytest.raises(FaultError, match=r"expected a fault such as faults\.error\(503\), got 503"):
        fake_llm.script(503)  # type: ignore[arg-type]
    assert fake_llm.plan.remaining() == 0  # nothing half-applied

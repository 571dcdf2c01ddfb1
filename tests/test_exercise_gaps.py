"""Each gap of the four core tasks is real in the starter and absent in the reference solution.

Both apps run as the grader runs a submission: a uvicorn child process (`AppProcess`) with the
scenario settings, talking to the `fake_llm` provider over loopback. These tests see them only
through HTTP and the fake's ledger, as the scenarios will.

Timing assertions state their tolerance. Lower bounds are tight: the fake never answers early and
an app that waits, waits at least that long. Upper bounds are generous where only a loaded machine
can push them (two test workers on two cores), and always well inside what a wrong app would take,
so that no assertion can flip between pass and fail on the same code.
"""

from __future__ import annotations

import contextlib
import json
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from harness.fake_llm import Call, FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppProcess, scenario_settings
from solutions import REFERENCE, build_solution

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
PRIMARY, FALLBACK = "fake-large", "fake-small"  # scenario_settings' PRIMARY_MODEL, FALLBACK_MODEL
SHORT_DEADLINE = 1.0  # REQUEST_DEADLINE of the `reference_short_deadline` app, in seconds

# The app notices a client leave within milliseconds, and so does the fake when the app hangs up
# in turn. Half a second leaves room for a loaded machine and is still well short of the seconds
# the upstream call would run on if nobody cancelled it.
NOTICED_LEAVING = 0.5
# Timers and clocks have sub-millisecond granularity: a lower bound gets this much slack, no more.
CLOCK_SLACK = 0.001
# How long an app may take to read a request already on the wire and act on it (~1 ms when idle).
APP_TAKES_IT_IN = 0.3
# Longer than any answer here takes: an app that hangs fails the test instead of hanging it.
CLIENT_GIVES_UP = 10.0


# -- the apps -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter(fake_llm_server: FakeLLM) -> typing.Iterator[AppProcess]:
    with AppProcess(ROOT, scenario_settings(fake_llm_server.base_url)) as app:
        yield app


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_solution(tmp_path_factory.mktemp("reference"), REFERENCE)


@pytest.fixture(scope="module")
def reference(reference_folder: Path, fake_llm_server: FakeLLM) -> typing.Iterator[AppProcess]:
    with AppProcess(reference_folder, scenario_settings(fake_llm_server.base_url)) as app:
        yield app


@pytest.fixture
def fresh_reference(reference_folder: Path, fake_llm: FakeLLM) -> typing.Iterator[AppProcess]:
    """The reference with nothing left from earlier tests: its circuit breaker, opened by the
    tests where the primary model is down, would send later requests straight to the fallback."""
    with AppProcess(reference_folder, scenario_settings(fake_llm.base_url)) as app:
        yield app


@pytest.fixture(scope="module")
def reference_short_deadline(
    reference_folder: Path, fake_llm_server: FakeLLM
) -> typing.Iterator[AppProcess]:
    """The reference with a one-second deadline, so that running into it is quick to show."""
    settings = scenario_settings(fake_llm_server.base_url, REQUEST_DEADLINE=str(SHORT_DEADLINE))
    with AppProcess(reference_folder, settings) as app:
        yield app


@pytest.fixture
def question(request: pytest.FixtureRequest) -> str:
    """A question no other test asks: the apps share in-flight calls between equal questions."""
    return f"What does retrieval do to accuracy? ({request.node.name})"


# -- talking to an app ----------------------------------------------------------------------------


def client(app: AppProcess) -> httpx.AsyncClient:
    """A plain loopback client (`trust_env=False`: no proxy may sit on the path)."""
    return httpx.AsyncClient(base_url=app.url, trust_env=False, timeout=CLIENT_GIVES_UP)


@dataclass
class Event:
    name: str
    data: typing.Any
    at: float  # time.monotonic() when the test received it


async def events(response: httpx.Response) -> typing.AsyncIterator[Event]:
    """The server-sent events of `response`, each as soon as its blank line arrives."""
    name: str
    data: list[str]
    name, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line and data:
            yield Event(name, json.loads("\n".join(data)), time.monotonic())
            name, data = "message", []


async def stream(app: AppProcess, question: str) -> list[Event]:
    """Every event of one streamed answer (one that never ends fails the test, not hangs it)."""
    with anyio.fail_after(CLIENT_GIVES_UP):
        async with (
            client(app) as http,
            http.stream("POST", "/api/answer/stream", json={"question": question}) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return [event async for event in events(response)]


def served(metadata: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """The answer (if any) and who served it, from an answer's metadata (which holds more)."""
    return {k: v for k, v in metadata.items() if k in ("answer", "model", "fallback", "attempts")}


def text_of(received: list[Event]) -> str:
    return "".join(event.data["text"] for event in received if event.name == "token")


class Tab:
    """A browser tab asking `question` with ``POST /api/answer`` in the background.

    `sent()` returns once the whole request is on the wire; `close()` abandons the request as
    closing the tab does (the connection is closed) and returns the moment it did.
    """

    def __init__(self, app: AppProcess, question: str) -> None:
        self.app = app
        self.question = question
        self._sent = anyio.Event()
        self.response: httpx.Response | None = None
        self._scope = anyio.CancelScope()

    async def run(self) -> None:
        async def trace(event: str, info: dict[str, typing.Any]) -> None:
            if event == "http11.send_request_body.complete":
                self._sent.set()

        with self._scope:
            async with client(self.app) as http:
                self.response = await http.post(
                    "/api/answer", json={"question": self.question}, extensions={"trace": trace}
                )

    async def sent(self) -> None:
        with anyio.fail_after(CLIENT_GIVES_UP):
            await self._sent.wait()

    def close(self) -> float:
        closed_at = time.monotonic()
        self._scope.cancel()
        return closed_at


async def finished_call(fake: FakeLLM) -> Call:
    """The one upstream call, once it has ended one way or another."""
    [call] = await fake.ledger.wait_for(
        lambda calls: len(calls) == 1 and calls[0].finished, what="one finished call"
    )
    return call


# -- streaming ------------------------------------------------------------------------------------

# A model that writes for about a second: 10 tokens, 0.1 s apart.
SLOW_WRITER = f.ok(tokens=10, token_delay=0.1)


async def test_starter_has_no_stream_endpoint(starter: AppProcess, question: str) -> None:
    async with client(starter) as http:
        response = await http.post("/api/answer/stream", json={"question": question})
    assert response.status_code in (404, 405)


async def test_starter_answers_only_once_the_model_has_finished(
    starter: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(SLOW_WRITER)
    async with client(starter) as http:
        response = await http.post("/api/answer", json={"question": question})
    answered_at = time.monotonic()
    call = await finished_call(fake_llm)
    assert response.status_code == 200
    # No tolerance needed: the fake records the end before its last byte leaves.
    assert call.ended_at is not None and answered_at >= call.ended_at


async def test_reference_streams_each_token_as_the_model_writes_it(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(SLOW_WRITER)
    received = await stream(reference, question)
    call = await finished_call(fake_llm)
    assert call.stream and call.outcome == "completed"
    assert [e.name for e in received] == ["token"] * 10 + ["done"]
    assert text_of(received) == call.text
    assert served(received[-1].data) == {"model": PRIMARY, "fallback": False, "attempts": 1}
    assert received[-1].data["usage"] == {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": 10,
    }
    assert call.first_token_at is not None
    # The first token reaches the client within milliseconds of the model writing it; 0.4 s
    # allows for a loaded machine.
    assert received[0].at - call.first_token_at <= 0.4
    # And while the model is still writing: its last token is scheduled 0.9 s after the first (the
    # fake is never early), a margin no load eats. An app that waits for the whole answer cannot
    # pass this, however fast it is: its first event comes after the last token.
    assert received[0].at < call.token_times[-1]


# -- cancellation ---------------------------------------------------------------------------------


# A model that thinks for a while before it writes anything.
def thinking(seconds: float) -> f.Fault:
    return f.ok(first_token=seconds)


async def test_starter_keeps_the_model_working_after_the_client_left(
    starter: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(thinking(1.5))
    tab = Tab(starter, question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1)
        closed_at = tab.close()
    call = await finished_call(fake_llm)
    assert call.outcome == "completed" and not call.disconnected
    assert call.tokens > 0 and call.tokens_after(closed_at) == call.tokens  # billed for nobody


async def test_reference_cancels_the_model_when_the_client_leaves(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(thinking(1.5))
    tab = Tab(reference, question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1)
        closed_at = tab.close()
    call = await finished_call(fake_llm)
    assert call.outcome == "disconnected" and call.disconnected_at is not None
    assert call.disconnected_at - closed_at <= NOTICED_LEAVING  # the model thinks 1.5 s
    assert call.tokens == 0


async def test_reference_cancels_the_model_when_a_stream_is_left_while_it_thinks(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(thinking(1.5))
    async with client(reference) as http:
        async with http.stream("POST", "/api/answer/stream", json={"question": question}):
            await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1)
            closed_at = time.monotonic()
    call = await finished_call(fake_llm)
    assert call.outcome == "disconnected" and call.disconnected_at is not None
    assert call.disconnected_at - closed_at <= NOTICED_LEAVING  # the model thinks 1.5 s
    assert call.tokens == 0


async def test_reference_cancels_the_model_when_a_stream_is_left_midway(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.ok(tokens=40, token_delay=0.05))  # 2 s of writing
    received: list[Event] = []
    async with (
        client(reference) as http,
        http.stream("POST", "/api/answer/stream", json={"question": question}) as response,
    ):
        async for event in events(response):
            received.append(event)
            if len(received) == 3:
                break
        closed_at = time.monotonic()
    call = await finished_call(fake_llm)
    assert [e.name for e in received] == ["token"] * 3
    assert call.outcome == "disconnected" and call.disconnected_at is not None
    assert call.disconnected_at - closed_at <= NOTICED_LEAVING  # 1.85 s of writing were left
    assert call.tokens < 40


@contextlib.asynccontextmanager
async def two_tabs_on_one_call(
    app: AppProcess, fake: FakeLLM, question: str
) -> typing.AsyncIterator[tuple[Tab, Tab]]:
    """Two tabs asking the same question, the second joining the call the first one started."""
    first, second = Tab(app, question), Tab(app, question)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first.run)
        await fake.ledger.wait_for(lambda calls: len(calls) == 1)
        tasks.start_soon(second.run)
        await second.sent()
        await anyio.sleep(APP_TAKES_IT_IN)
        yield first, second


async def test_reference_keeps_a_shared_call_for_the_client_still_waiting(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(thinking(1.2))
    async with two_tabs_on_one_call(reference, fake_llm, question) as (first, second):
        first.close()
    call = await finished_call(fake_llm)
    assert second.response is not None and second.response.status_code == 200
    assert second.response.json()["answer"] == call.text
    assert call.outcome == "completed" and not call.disconnected
    assert len(fake_llm.calls) == 1  # one call for both tabs


async def test_reference_cancels_a_shared_call_when_the_last_client_leaves(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(thinking(2.0))
    async with two_tabs_on_one_call(reference, fake_llm, question) as (first, second):
        first.close()
        await anyio.sleep(NOTICED_LEAVING)  # long enough to see a wrong cancel
        assert not fake_llm.calls[0].disconnected
        closed_at = second.close()
    call = await finished_call(fake_llm)
    assert call.outcome == "disconnected" and call.disconnected_at is not None
    # The model thinks 2 s; both tabs are gone by ~1.1 s even on a loaded machine.
    assert call.disconnected_at - closed_at <= NOTICED_LEAVING
    assert len(fake_llm.calls) == 1


# -- retries --------------------------------------------------------------------------------------

TRANSIENT = [
    f.error(408),
    f.error(409),
    f.error(429),
    f.error(500),
    f.error(502),
    f.error(503),
    f.error(504),
    f.error(529),
    f.reset(),  # connection reset before the headers
    f.cut(after_tokens=3),  # body shorter than its Content-Length
]
REJECTED = [400, 401, 403, 404, 422]


async def test_starter_turns_a_passing_failure_into_a_500(
    starter: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.error(503))
    async with client(starter) as http:
        response = await http.post("/api/answer", json={"question": question})
    assert response.status_code == 500
    assert [c.status for c in fake_llm.calls] == [503]


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda fault: fault.describe())
async def test_reference_retries_a_passing_failure(
    reference: AppProcess, fake_llm: FakeLLM, question: str, fault: f.Fault
) -> None:
    fake_llm.script(fault, f.ok())
    async with client(reference) as http:
        response = await http.post("/api/answer", json={"question": question})
    calls = fake_llm.calls
    assert response.status_code == 200
    assert served(response.json()) == {
        "answer": calls[1].text,
        "model": PRIMARY,
        "fallback": False,
        "attempts": 2,
    }
    assert [c.model for c in calls] == [PRIMARY, PRIMARY]


@pytest.mark.parametrize("status", REJECTED)
async def test_reference_never_retries_nor_falls_back_on_a_rejected_request(
    reference: AppProcess, fake_llm: FakeLLM, question: str, status: int
) -> None:
    fake_llm.always(f.error(status), model=PRIMARY)
    async with client(reference) as http:
        response = await http.post("/api/answer", json={"question": question})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_rejected"
    assert response.json()["retryable"] is False
    # The response is out, so the app is done: no call can come later.
    assert [(c.model, c.status) for c in fake_llm.calls] == [(PRIMARY, status)]


@pytest.mark.parametrize(
    "rate_limit",
    [f.error(429, retry_after=0.3), f.error(429, retry_after_ms=300, retry_after=2)],
    ids=["retry-after", "retry-after-ms first"],
)
async def test_reference_waits_as_long_as_the_provider_asks(
    reference: AppProcess, fake_llm: FakeLLM, question: str, rate_limit: f.Fault
) -> None:
    fake_llm.script(rate_limit, f.ok())
    async with client(reference) as http:
        response = await http.post("/api/answer", json={"question": question})
    assert response.status_code == 200
    first, second = fake_llm.calls
    waited = second.received_at - first.received_at
    # The app gets the 429 after the fake received the request, then waits 0.3 s: a tight lower
    # bound. Its own backoff would be 0.1 s at most; the upper bound (0.5 s late on a loaded
    # machine) tells 0.3 s from the 2 s of a Retry-After read before retry-after-ms.
    assert 0.3 - CLOCK_SLACK <= waited <= 0.3 + 0.5


async def test_reference_retries_a_stream_until_its_first_token(
    reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.script(f.error(503), f.ok())
    received = await stream(reference, question)
    calls = fake_llm.calls
    assert [c.status for c in calls] == [503, 200]
    assert text_of(received) == calls[1].text
    assert served(received[-1].data) == {"model": PRIMARY, "fallback": False, "attempts": 2}


@pytest.mark.parametrize(
    "fault",
    [f.reset(after_tokens=3), f.error(500, after_tokens=3), f.cut(after_tokens=3)],
    ids=lambda fault: fault.describe(),
)
async def test_reference_never_restarts_an_answer_the_user_is_reading(
    reference: AppProcess, fake_llm: FakeLLM, question: str, fault: f.Fault
) -> None:
    fake_llm.script(fault, f.ok())
    received = await stream(reference, question)
    [call] = fake_llm.calls  # the stream is over, so the app is done: no second call
    assert [e.name for e in received] == ["token"] * 3 + ["error"]
    assert text_of(received) == call.text
    assert received[-1].data["retryable"] is True


# -- fallback -------------------------------------------------------------------------------------


async def test_starter_fails_when_the_primary_model_is_down(
    starter: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(503), model=PRIMARY)
    async with client(starter) as http:
        response = await http.post("/api/answer", json={"question": question})
    assert response.status_code == 500
    assert [c.model for c in fake_llm.calls] == [PRIMARY]


async def test_reference_answers_from_the_fallback_model_when_the_primary_is_down(
    fresh_reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(503), model=PRIMARY)
    async with client(fresh_reference) as http:
        response = await http.post("/api/answer", json={"question": question})
    calls = fake_llm.calls
    assert [c.model for c in calls] == [PRIMARY] * 3 + [FALLBACK]  # MAX_ATTEMPTS is 3
    assert response.status_code == 200
    assert served(response.json()) == {
        "answer": calls[-1].text,
        "model": FALLBACK,
        "fallback": True,
        "attempts": 4,
    }


async def test_reference_streams_from_the_fallback_model_when_the_primary_is_down(
    fresh_reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(503), model=PRIMARY)
    received = await stream(fresh_reference, question)
    calls = fake_llm.calls
    assert [c.model for c in calls] == [PRIMARY] * 3 + [FALLBACK]
    assert text_of(received) == calls[-1].text
    assert received[-1].name == "done"
    assert served(received[-1].data) == {"model": FALLBACK, "fallback": True, "attempts": 4}


async def test_reference_falls_back_at_once_when_the_wait_asked_for_outlasts_the_deadline(
    fresh_reference: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.error(429, retry_after=10), model=PRIMARY)  # REQUEST_DEADLINE is 4 s
    started = time.monotonic()
    async with client(fresh_reference) as http:
        response = await http.post("/api/answer", json={"question": question})
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["model"] == FALLBACK
    assert [c.model for c in fake_llm.calls] == [PRIMARY, FALLBACK]
    assert took <= 1.0  # ~10 ms when idle; waiting for the primary would take 10 s


# -- the deadline ---------------------------------------------------------------------------------

# The deadline is 1 s. The app is cut off at it, then answers within milliseconds; 0.5 s allows
# for a loaded machine and is far from the 20 s the drip takes, or the stream that never ends.
CUT_OFF_LATE = 0.5


async def test_reference_cuts_a_slow_drip_off_at_the_deadline(
    reference_short_deadline: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.drip(bytes_per_second=50))  # every read quick, the whole answer ~20 s
    started = time.monotonic()
    async with client(reference_short_deadline) as http:
        response = await http.post("/api/answer", json={"question": question})
    took = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["code"] == "deadline_exceeded"
    assert SHORT_DEADLINE - CLOCK_SLACK <= took <= SHORT_DEADLINE + CUT_OFF_LATE
    call = await finished_call(fake_llm)
    assert call.outcome == "disconnected"  # and the app hung up on the drip


async def test_reference_cuts_an_endless_stream_off_at_the_deadline(
    reference_short_deadline: AppProcess, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.endless(token_delay=0.05))
    started = time.monotonic()
    received = await stream(reference_short_deadline, question)
    took = time.monotonic() - started
    assert received[0].name == "token"
    assert received[-1].name == "error"
    assert received[-1].data == {
        "code": "deadline_exceeded",
        "message": received[-1].data["message"],
        "retryable": True,
    }
    assert SHORT_DEADLINE - CLOCK_SLACK <= took <= SHORT_DEADLINE + CUT_OFF_LATE
    call = await finished_call(fake_llm)
    assert call.outcome == "disconnected"

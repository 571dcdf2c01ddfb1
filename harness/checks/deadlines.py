"""What the timeouts scenarios check: a slow model is cut off at REQUEST_DEADLINE, the user is
told, and the call to the model is closed.

The user is told with the brief's error shape, as a 504 reply or as the stream's last event::

    {"code": "deadline_exceeded", "message": "The model took too long.", "retryable": true}

When the deadline started is not seen from here: the app had the request somewhere between the
question leaving the client and its first call to the model. On an idle machine those are a
millisecond apart; on a loaded one, a freshly started app can take a good part of a second to get
from the one to the other. So the time an app took is held against the deadline from the later
moment (`Span.since_first_call`), and against the margin it may keep from the earlier
(`Span.took`): the machine's load is never held against the app.
"""

from __future__ import annotations

import json
import time
import typing
from dataclasses import dataclass

import anyio

from ..app_client import AppClient, Reply, StreamReply, excerpt
from ..fake_llm import Call, FakeLLM
from ..hosting.launcher import AppSettings
from ..timing import CLOCK_SLACK, DEADLINE_MARGIN, LATE, NOTICED_LEAVING
from .errors import ERROR_SHAPE, is_error


@dataclass(frozen=True)
class Span:
    """A request's time, from the question leaving the client to the whole reply in (the
    `time.monotonic()` seconds the ledger keeps too), and the app's first call to the model."""

    asked: float
    ended: float
    first_call: float | None

    @classmethod
    def of(cls, asked: float, fake_llm: FakeLLM, calls: list[Call] | None = None) -> Span:
        """The span of a request asked at `asked` and ended now, whose calls to the model are
        `calls` (default: every call the fake has seen)."""
        ended = time.monotonic()
        calls = fake_llm.calls if calls is None else calls
        return cls(asked, ended, calls[0].received_at if calls else None)

    @property
    def took(self) -> float:
        """Seconds from the question: the most the app can have had the request for."""
        return self.ended - self.asked

    @property
    def since_first_call(self) -> float:
        """Seconds from the app's first call to the model (from the question if it made none):
        the least the app can have had the request for."""
        began = self.asked if self.first_call is None else max(self.asked, self.first_call)
        return self.ended - began


def patience(settings: AppSettings) -> float:
    """How long a user waits for the app: the deadline and LATE, and as long again for a
    loaded machine to bring the request to the app (see the module's docstring). An app still
    busy then has failed; waiting on would only make a wrong app slower to grade."""
    return 2 * settings.request_deadline + LATE


async def ask(
    client: AppClient, fake_llm: FakeLLM, question: str, settings: AppSettings
) -> tuple[Reply, Span]:
    """``POST /api/answer``, given up (as a user closing the tab) after `patience`."""
    limit = patience(settings)
    asked = time.monotonic()
    with anyio.move_on_after(limit):
        reply = await client.ask(question)
        return reply, Span.of(asked, fake_llm, calls_for(fake_llm, question))
    raise AssertionError(
        f"POST /api/answer had not answered {limit:.2f}s after it was asked: the model was too "
        f"slow and the app waited for it past REQUEST_DEADLINE ({settings.request_deadline:g}s)"
    )


async def stream(
    client: AppClient, fake_llm: FakeLLM, question: str, settings: AppSettings
) -> tuple[StreamReply, Span]:
    """``POST /api/answer/stream`` read to its end; given up (as a user closing the tab) after
    `patience`."""
    limit = patience(settings)
    asked = time.monotonic()
    with anyio.move_on_after(limit):
        async with client.open_stream(question) as opened:
            if not opened.ended:
                async for _ in opened.follow():
                    pass
            return opened.result, Span.of(asked, fake_llm, calls_for(fake_llm, question))
    raise AssertionError(
        f"POST /api/answer/stream was still going {limit:.2f}s after it was asked: the model "
        f"was too slow and the app went on waiting for it past REQUEST_DEADLINE "
        f"({settings.request_deadline:g}s)"
    )


def calls_for(fake_llm: FakeLLM, question: str) -> list[Call]:
    """The calls to the model asking `question`."""
    return [call for call in fake_llm.calls if question in call.prompt]


# How much of the deadline a model may take and still be in time, in the scenarios that check
# nothing is cut off early, counted from the model's side. The app's deadline starts earlier, when
# it has the request, so the rest (0.4 of it: 0.24-0.4 s) covers the moment a loaded machine takes
# between the two: at 0.75, a stall of 0.3 s there on a loaded two-core machine made an app whose
# deadline was right cut off a stream this check counted as in time. It is still beyond what an
# app that gives an attempt a share of the deadline (a third, a half) allows it, whatever the lag:
# that share starts before the call.
IN_TIME = 0.6


def expect_in_time(reply: Reply | StreamReply | None, what: str) -> None:
    """A model that answered within IN_TIME of the deadline got its answer to the user:
    POST /api/answer's 200, or a stream ending with `done`."""
    early = f"{what}, before REQUEST_DEADLINE, and the app cut it off"
    if isinstance(reply, StreamReply):
        reply.expect_events()
        assert reply.names[-1:] == ["done"], f"{early}: the stream ended with {reply.names[-1:]}"
    else:
        assert isinstance(reply, Reply), f"{what}, and the user got no reply"
        assert reply.status == 200, f"{early} ({reply.status}: {excerpt(reply.text)})"


def expect_error(error: typing.Any, where: str) -> None:
    """`error` is what the brief asks of every failure: a code, a message, whether to retry."""
    assert is_error(error) and error["code"], f"{where} should carry {ERROR_SHAPE}, not {error!r}"


def expect_error_event(reply: StreamReply, what: str) -> None:
    """The reply is a stream of events whose last is a well-formed `error`, with no `done`; or,
    from an app that had not started the stream (whether it streams is the streaming task's
    business), a 504 with the error as its body."""
    if not reply.is_event_stream and reply.status == 504:
        try:
            body = json.loads(reply.body)
        except ValueError:
            body = reply.body
        expect_error(body, "the 504 reply")
        return
    reply.expect_events()
    tokens = len(reply.tokens)
    if "done" in reply.names:
        ending = f"`done` after {tokens} tokens, as if the answer were complete"
    elif reply.names[-1:] != ["error"]:
        ending = f"no `error` event after {tokens} tokens, as if the answer were simply short"
    else:
        ending = ""
    assert not ending, f"{what}, and the stream ended with {ending}: end it with an `error` event"
    expect_error(reply.events[-1].data, "the error event")


def expect_at_deadline(span: Span, settings: AppSettings, what: str) -> None:
    """`what` happened at the deadline: not before it, but for the DEADLINE_MARGIN an app may
    keep to answer in time (the fake is never early, so neither is a deadline counted from the
    request's arrival), and at most LATE after it (`expect_by_deadline`)."""
    deadline = settings.request_deadline
    earliest = deadline * (1 - DEADLINE_MARGIN)
    assert span.took >= earliest - CLOCK_SLACK, (
        f"{what} {span.took:.2f}s after the question, before REQUEST_DEADLINE ({deadline:g}s) "
        f"was up: the model should have until the deadline (allowed: from {earliest:.2f}s)"
    )
    expect_by_deadline(span, settings, what)


def expect_by_deadline(span: Span, settings: AppSettings, what: str) -> None:
    """`what` happened at most LATE after the deadline, counted from the app's first call to
    the model at the latest."""
    deadline = settings.request_deadline
    assert span.since_first_call <= deadline + LATE, (
        f"{what} {span.took:.2f}s after the question ({span.since_first_call:.2f}s after the "
        f"app's first call to the model); REQUEST_DEADLINE is {deadline:g}s, so it should come "
        f"by the deadline (allowed: up to {LATE}s after it), every attempt included"
    )


async def expect_hung_up(fake_llm: FakeLLM, after: str) -> None:
    """Every call to the model ends within NOTICED_LEAVING: the app has closed its connection."""
    try:
        await fake_llm.ledger.wait_for(
            lambda calls: all(call.finished for call in calls),
            timeout=NOTICED_LEAVING,
            what="the app's calls to end",
        )
    except TimeoutError:
        running = [call for call in fake_llm.calls if not call.finished]
        raise AssertionError(
            f"{after}, the app left {len(running)} call(s) to the model running "
            f"({NOTICED_LEAVING}s later, {sum(c.tokens for c in running)} tokens billed so "
            "far): close the upstream connection at the deadline, or the provider goes on "
            "generating, and billing, an answer nobody will read"
        ) from None


async def expect_504(
    client: AppClient, fake_llm: FakeLLM, question: str, settings: AppSettings, model: str
) -> None:
    """The user gets a 504 with a clear JSON error at the deadline, and the calls are closed.
    `model` says what the model did, as a sentence's start."""
    reply, span = await ask(client, fake_llm, question, settings)
    assert reply.status == 504, (
        f"{model}, and POST /api/answer answered {reply.status} after {reply.took:.2f}s; at "
        f"REQUEST_DEADLINE it should answer 504 (Gateway Timeout) with {ERROR_SHAPE}"
    )
    expect_error(reply.json(), "the 504 reply")
    expect_at_deadline(span, settings, "the 504 came")
    await expect_hung_up(fake_llm, "after answering 504")

"""Mutants of the four core tasks: streaming, cancellation, retries and fallback."""

from __future__ import annotations

from .edits import Edit, Mutant

# -- streaming ------------------------------------------------------------------------------------

BUFFER_THEN_STREAM = Mutant(
    "buffer_then_stream",
    "The stream endpoint collects every piece of the answer, then sends all the events at once.",
    (
        Edit(
            "streaming.py",
            "            async for event in events:\n",
            "            for event in [event async for event in events]:\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "leaving_a_stream_midway_stops_the_model",
            "tokens_arrive_while_the_model_writes",
        }
    ),
)

NO_ERROR_EVENT = Mutant(
    "no_error_event",
    "A failure during the stream ends it silently: no `error` event, and no `done` either.",
    (
        Edit(
            "streaming.py",
            "        except AnswerError as error:\n"
            '            yield _event("error", error.to_json())\n',
            "        except AnswerError:\n            return\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "a_stream_with_every_model_down_ends_with_an_error",
            "an_endless_stream_is_cut_off_at_the_deadline",
        }
    ),
)

SERIALISES_STREAMS = Mutant(
    "serialises_streams",
    "A lock around the stream (to protect the shared HTTP client) lets one answer stream at a time.",
    (
        Edit("streaming.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "streaming.py",
            "async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:\n"
            "    async with contextlib.aclosing(events):\n",
            "_ONE_AT_A_TIME = asyncio.Lock()\n\n\n"
            "async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:\n"
            "    async with _ONE_AT_A_TIME, contextlib.aclosing(events):\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "streams_run_side_by_side",
        }
    ),
)

STRIPS_TOKENS = Mutant(
    "strips_tokens",
    "Each token's text is stripped before it is sent, losing the spaces between words.",
    (
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"text": event.strip()})',
        ),
    ),
    expected_failures=frozenset(
        {
            "stream_is_token_events_then_done",
        }
    ),
)

# -- cancellation ---------------------------------------------------------------------------------

JSON_IGNORES_DISCONNECT = Mutant(
    "json_ignores_disconnect",
    "POST /api/answer awaits the answer directly, without watching for the client to leave.",
    (
        Edit(
            "app.py",
            "result = await cancel_on_disconnect(request, lambda: answers.answer(question))",
            "result = await answers.answer(question)",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_shared_answer_stops_when_the_last_tab_closes",
            "leaving_while_the_model_thinks_stops_it",
        }
    ),
)

STREAM_KEEPS_UPSTREAM_RUNNING = Mutant(
    "stream_keeps_upstream_running",
    "The stream reads the model in a background task feeding a queue, and nobody cancels that "
    "task when the client leaves.",
    (
        Edit("streaming.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "streaming.py",
            """\
async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, Metadata):
                    yield _event("done", {**event.to_json(), "request_id": request_id})
                else:
                    yield _event("token", {"text": event})
        except AnswerError as error:
            yield _event("error", error.to_json())
""",
            """\
async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def produce() -> None:
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    if isinstance(event, Metadata):
                        data = {**event.to_json(), "request_id": request_id}
                        await queue.put(_event("done", data))
                    else:
                        await queue.put(_event("token", {"text": event}))
            except AnswerError as error:
                await queue.put(_event("error", error.to_json()))
            finally:
                await queue.put(None)

    producer = asyncio.create_task(produce())
    while (item := await queue.get()) is not None:
        yield item
    await producer
""",
        ),
    ),
    expected_failures=frozenset(
        {
            "leaving_a_stream_before_its_first_token_stops_the_model",
            "leaving_a_stream_midway_stops_the_model",
        }
    ),
)

CANCELS_SHARED_WORK = Mutant(
    "cancels_shared_work",
    "A shared call is cancelled as soon as any one of its waiters leaves, not the last one.",
    (
        Edit(
            "inflight.py",
            "            if call.waiters == 0 and not call.task.done():\n",
            "            if not call.task.done():\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_shared_answer_survives_one_tab_closing",
        }
    ),
)

# -- retries --------------------------------------------------------------------------------------

RETRIES_CLIENT_ERRORS = Mutant(
    "retries_client_errors",
    "Every error response from the provider is retried, 400, 401, 403, 404 and 422 included.",
    (
        Edit(
            "retry.py",
            "            if not is_transient(error):\n",
            "            if not is_transient(error) and not isinstance(error, ProviderError):\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "rejected_requests_are_not_retried",
        }
    ),
)

FORGETS_529 = Mutant(
    "forgets_529",
    "The transient statuses are a hand-written list of 5xx that forgets 529 (overloaded).",
    (
        Edit(
            "retry.py",
            "return status is None or status in TRANSIENT_STATUSES or status >= 500\n",
            "return status is None or status in TRANSIENT_STATUSES | {500, 502, 503, 504}\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "any_few_passing_failures_still_give_the_answer",
            "passing_failures_are_retried",
        }
    ),
)

NO_BACKOFF = Mutant(
    "no_backoff",
    "Retries at once, waiting only when the provider asks for it with Retry-After.",
    (
        Edit(
            "retry.py",
            "            wait = requested_wait(error)\n"
            "            if wait is None:\n"
            "                wait = backoff(retry, settings)\n",
            "            wait = requested_wait(error) or 0.0\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "backoff_doubles",
        }
    ),
)

NO_JITTER = Mutant(
    "no_jitter",
    "Capped exponential backoff without the random jitter: clients that failed together retry "
    "together.",
    (
        Edit(
            "retry.py",
            "    return delay * (1 - JITTER * random.random())\n",
            "    return delay\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "retries_are_jittered",
        }
    ),
)

IGNORES_RETRY_AFTER = Mutant(
    "ignores_retry_after",
    "Retry-After and retry-after-ms are ignored: the app always waits its own backoff.",
    (
        Edit(
            "retry.py",
            "            wait = requested_wait(error)\n"
            "            if wait is None:\n"
            "                wait = backoff(retry, settings)\n",
            "            wait = backoff(retry, settings)\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "retry_after_is_honoured",
            "retry_after_ms_comes_first",
        }
    ),
)

UNBOUNDED_RETRIES = Mutant(
    "unbounded_retries",
    "A transient failure is retried until the deadline's budget runs out, ignoring MAX_ATTEMPTS.",
    (
        Edit("retry.py", "import email.utils\n", "import email.utils\nimport itertools\n"),
        Edit(
            "retry.py",
            "    for retry in range(settings.max_attempts - 1):\n",
            "    for retry in itertools.count():\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_stream_falls_back_too",
            "attempts_are_bounded",
            "the_fallback_answers_when_the_primary_is_down",
        }
    ),
)

RETRIES_AFTER_TOKENS = Mutant(
    "retries_after_tokens",
    "A stream that breaks off after some pieces were sent is started again from scratch, so the "
    "user reads its beginning twice.",
    (
        Edit(
            "answers.py",
            """\
        (first, pieces), served = await with_fallback(
            lambda model: _first_piece(self._llm.stream(messages, model)),
            self._settings,
            deadline,
            self._breaker,
        )
        usage = Usage()
        async with contextlib.aclosing(pieces):
            piece = first
            while piece is not None:
                if isinstance(piece, Usage):
                    usage = piece
                else:
                    yield piece
                piece = await _next_piece(pieces, deadline)
""",
            """\
        for retry in range(self._settings.max_attempts):
            (first, pieces), served = await with_fallback(
                lambda model: _first_piece(self._llm.stream(messages, model)),
                self._settings,
                deadline,
                self._breaker,
            )
            usage = Usage()
            try:
                async with contextlib.aclosing(pieces):
                    piece = first
                    while piece is not None:
                        if isinstance(piece, Usage):
                            usage = piece
                        else:
                            yield piece
                        piece = await _next_piece(pieces, deadline)
                break
            except AnswerInterrupted:
                if retry == self._settings.max_attempts - 1:
                    raise
""",
        ),
    ),
    expected_failures=frozenset(
        {
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
)

TIMEOUTS_NOT_RETRIED = Mutant(
    "timeouts_not_retried",
    "Connect and read timeouts are not counted as transient, so they are neither retried nor "
    "sent to the fallback.",
    (
        Edit(
            "retry.py",
            "TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, "
            "httpx.RemoteProtocolError)",
            "TRANSIENT_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError)",
        ),
    ),
    expected_failures=frozenset(
        {
            "dropped_connections_and_timeouts_are_retried",
        }
    ),
)

CONNECTION_ERRORS_NOT_RETRIED = Mutant(
    "connection_errors_not_retried",
    "Dropped connections, resets and answers cut short are not retried: only error statuses "
    "and timeouts are.",
    (
        Edit(
            "retry.py",
            "TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, "
            "httpx.RemoteProtocolError)",
            "TRANSIENT_ERRORS = (httpx.TimeoutException,)",
        ),
        Edit(
            "retry.py",
            "        return status is None or status in TRANSIENT_STATUSES or status >= 500\n",
            "        return status is not None and (\n"
            "            status in TRANSIENT_STATUSES or status >= 500\n"
            "        )\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "any_few_passing_failures_still_give_the_answer",
            "dropped_connections_and_timeouts_are_retried",
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
)

# -- the deadline ---------------------------------------------------------------------------------

IGNORES_DEADLINE = Mutant(
    "ignores_deadline",
    "REQUEST_DEADLINE is never enforced: no cut-off while the model answers, and no check of the "
    "time left before a retry.",
    (
        Edit(
            "deadline.py",
            """\
        try:
            with anyio.fail_after(self.remaining()):
                yield
        except TimeoutError:
            raise DeadlineExceeded("The model took too long to answer.") from None
""",
            "        yield\n",
        ),
        Edit(
            "retry.py",
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n",
            "",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "fallback_rather_than_wait_past_the_deadline",
            "retries_stop_at_the_deadline",
            "the_deadline_counts_every_attempt",
        }
    ),
)

# -- fallback -------------------------------------------------------------------------------------

NO_FALLBACK = Mutant(
    "no_fallback",
    "FALLBACK_MODEL is never tried: when the primary is unavailable the answer fails.",
    (
        Edit(
            "fallback.py",
            "        for model in models:\n",
            "        for model in (settings.primary_model,):\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_failing_primary_is_left_alone",
            "a_stream_falls_back_too",
            "fallback_rather_than_wait_past_the_deadline",
            "the_fallback_answers_when_the_primary_is_down",
        }
    ),
)

FALLS_BACK_ON_CLIENT_ERRORS = Mutant(
    "falls_back_on_client_errors",
    "A request the provider rejected (400, 401, 403, 404, 422) is sent to the fallback model.",
    (
        Edit(
            "fallback.py",
            "                if is_transient(error):\n                    last_error = error\n",
            "                if is_transient(error) or isinstance(error, ProviderError):\n"
            "                    last_error = error\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "rejected_requests_do_not_fall_back",
        }
    ),
)

ALWAYS_FALLBACK = Mutant(
    "always_fallback",
    "The models are tried in the wrong order, so every answer comes from the fallback model.",
    (
        Edit(
            "fallback.py",
            "        models = (settings.primary_model, settings.fallback_model)\n",
            "        models = (settings.fallback_model, settings.primary_model)\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "an_answer_carries_typed_metadata",
            "metadata_covers_every_attempt",
            "no_fallback_when_the_primary_recovers",
            "rejected_requests_do_not_fall_back",
        }
    ),
)

NO_CIRCUIT_BREAKER = Mutant(
    "no_circuit_breaker",
    "The circuit breaker is made afresh for every request, so it never sees enough failures in a "
    "row to open.",
    (
        Edit(
            "fallback.py",
            "    if breaker.allows_call():\n",
            "    breaker = CircuitBreaker()\n    if breaker.allows_call():\n",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_failing_primary_is_left_alone",
        }
    ),
)

# -- errors ---------------------------------------------------------------------------------------

SWALLOWS_ERRORS = Mutant(
    "swallows_errors",
    "When the answer fails, POST /api/answer says 200 with an empty answer instead of an error.",
    (
        Edit(
            "app.py",
            "        result = await cancel_on_disconnect("
            "request, lambda: answers.answer(question))\n",
            """\
        try:
            result = await cancel_on_disconnect(request, lambda: answers.answer(question))
        except AnswerError:
            return JSONResponse({"answer": "", "model": None, "fallback": False, "attempts": 0})
""",
        ),
    ),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "attempts_are_bounded",
            "rejected_requests_are_not_retried",
            "retries_stop_at_the_deadline",
            "the_deadline_counts_every_attempt",
        }
    ),
)


MUTANTS: list[Mutant] = [
    BUFFER_THEN_STREAM,
    NO_ERROR_EVENT,
    JSON_IGNORES_DISCONNECT,
    STREAM_KEEPS_UPSTREAM_RUNNING,
    CANCELS_SHARED_WORK,
    RETRIES_CLIENT_ERRORS,
    FORGETS_529,
    NO_BACKOFF,
    NO_JITTER,
    IGNORES_RETRY_AFTER,
    UNBOUNDED_RETRIES,
    RETRIES_AFTER_TOKENS,
    IGNORES_DEADLINE,
    NO_FALLBACK,
    FALLS_BACK_ON_CLIENT_ERRORS,
    ALWAYS_FALLBACK,
    SWALLOWS_ERRORS,
    NO_CIRCUIT_BREAKER,
    STRIPS_TOKENS,
    SERIALISES_STREAMS,
    TIMEOUTS_NOT_RETRIED,
    CONNECTION_ERRORS_NOT_RETRIED,
]

"""Mutants of the retries task."""

from __future__ import annotations

from .edits import Edit, Mutant


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
    breaks=("retries.rejected",),
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
    breaks=("retries.statuses",),
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
    breaks=("retries.backoff",),
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
    breaks=("retries.jitter",),
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
    breaks=("retries.retry_after",),
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
    breaks=("retries.attempts",),
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
    breaks=("retries.not_after_tokens",),
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
    breaks=("retries.network",),
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
    breaks=("retries.network",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "any_few_passing_failures_still_give_the_answer",
            "dropped_connections_and_timeouts_are_retried",
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
)


MUTANTS: list[Mutant] = [
    RETRIES_CLIENT_ERRORS,
    FORGETS_529,
    NO_BACKOFF,
    NO_JITTER,
    IGNORES_RETRY_AFTER,
    UNBOUNDED_RETRIES,
    RETRIES_AFTER_TOKENS,
    TIMEOUTS_NOT_RETRIED,
    CONNECTION_ERRORS_NOT_RETRIED,
]

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
            "a_batch_s_questions_get_the_retries",
            "extracting_a_card_gets_the_retries",
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
    expected_failures=frozenset({"backoff_doubles", "retries_are_jittered"}),
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
    expected_failures=frozenset({"retries_are_jittered"}),
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
            "a_retry_after_date_is_honoured",
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
            "a_failing_primary_is_left_alone",
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
    expected_failures=frozenset({"nothing_is_retried_once_tokens_were_sent"}),
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
    expected_failures=frozenset({"dropped_connections_and_timeouts_are_retried"}),
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
            "a_batch_s_questions_get_the_retries",
            "a_failure_midway_ends_with_an_error_event",
            "a_stream_retries_failures_before_its_first_token",
            "any_few_passing_failures_still_give_the_answer",
            "dropped_connections_and_timeouts_are_retried",
            "extracting_a_card_gets_the_retries",
            "nothing_is_retried_once_tokens_were_sent",
            "the_models_are_the_ones_the_settings_name",
        }
    ),
)


# -- written from the brief (issue 12) ------------------------------------------------------------

# Which failures are transient: 408, 409, 429 and every 5xx; timeouts, resets, bodies cut short.

RETRIES_ONLY_429_OF_4XX = Mutant(
    "retries_only_429_of_4xx",
    "Of the 4xx statuses only 429 is retried: a 408 (timeout) or a 409 (conflict) is answered at "
    "once as a rejected request.",
    (
        Edit(
            "retry.py",
            "TRANSIENT_STATUSES = frozenset({408, 409, 429})",
            "TRANSIENT_STATUSES = frozenset({429})",
        ),
    ),
    breaks=("retries.statuses",),
    expected_failures=frozenset(
        {
            "any_few_passing_failures_still_give_the_answer",
            "passing_failures_are_retried",
        }
    ),
    from_brief=True,
)


RETRIES_5XX_ABOVE_500 = Mutant(
    "retries_5xx_above_500",
    "The 5xx test is `status > 500`: a plain 500 is taken for a rejected request, never retried.",
    (
        Edit(
            "retry.py",
            "status in TRANSIENT_STATUSES or status >= 500\n",
            "status in TRANSIENT_STATUSES or status > 500\n",
        ),
    ),
    breaks=("retries.statuses",),
    expected_failures=frozenset(
        {
            "any_few_passing_failures_still_give_the_answer",
            "passing_failures_are_retried",
        }
    ),
    from_brief=True,
)


STREAM_ERROR_BODY_UNREAD = Mutant(
    "stream_error_body_unread",
    "The stream builds its ProviderError from an error response whose body it never read: httpx "
    "raises ResponseNotRead, so on the stream no error status is retried, nor told in an error "
    "event.",
    (
        Edit(
            "llm.py",
            "            if response.is_error:\n"
            "                await response.aread()\n"
            "                raise ProviderError.from_response(response)\n",
            "            if response.is_error:\n"
            "                raise ProviderError.from_response(response)\n",
        ),
    ),
    breaks=("retries.statuses", "retries.rejected"),
    expected_failures=frozenset(
        {
            "a_stream_falls_back_too",
            "a_stream_retries_failures_before_its_first_token",
            "a_stream_with_every_model_down_ends_with_an_error",
            "every_failure_is_told_in_the_error_shape",
            "no_fallback_when_the_primary_recovers",
        }
    ),
    from_brief=True,
)


EMPTY_FIRST_CHUNK_COMMITS_THE_STREAM = Mutant(
    "empty_first_chunk_commits_the_stream",
    "The stream passes on every delta's content, the empty one of the provider's first chunk "
    "included: that counts as the first piece, so a failure before any text is not retried.",
    (
        Edit(
            "llm.py",
            '                    if text := (choice.get("delta") or {}).get("content"):\n',
            "                    if (text := (choice.get(\"delta\") or {}).get(\"content\")) "
            "is not None:\n",
        ),
    ),
    breaks=("retries.network",),
    expected_failures=frozenset({"a_stream_retries_failures_before_its_first_token"}),
    from_brief=True,
)


FORGETS_REMOTE_PROTOCOL_ERROR = Mutant(
    "forgets_remote_protocol_error",
    "httpx.RemoteProtocolError is left out of the transient errors: a JSON body shorter than its "
    "Content-Length (the connection closed mid-answer) is not retried.",
    (
        Edit(
            "retry.py",
            "TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, "
            "httpx.RemoteProtocolError)",
            "TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError)",
        ),
    ),
    breaks=("retries.network",),
    expected_failures=frozenset(
        {
            "any_few_passing_failures_still_give_the_answer",
            "dropped_connections_and_timeouts_are_retried",
        }
    ),
    from_brief=True,
)


CUT_STREAM_COUNTS_AS_FINISHED = Mutant(
    "cut_stream_counts_as_finished",
    "A stream that ends without its finish chunk and [DONE] is taken as finished: cut before its "
    "first piece it is not retried but answered empty, cut later it ends with done, not error.",
    (
        Edit(
            "llm.py",
            '        raise ProviderError("the answer broke off before its end")\n',
            "        yield usage  # the provider closed the stream: the answer is over\n",
        ),
    ),
    breaks=("retries.network", "retries.not_after_tokens"),
    expected_failures=frozenset({"a_stream_retries_failures_before_its_first_token"}),
    from_brief=True,
)


GARBLED_BODY_ESCAPES = Mutant(
    "garbled_body_escapes",
    "A truncated JSON body from the provider is not caught: json's ValueError escapes as a 500, "
    "and the call is never retried.",
    (
        Edit(
            "llm.py",
            "        except (ValueError, LookupError, TypeError) as exc:\n"
            '            raise ProviderError(f"the provider sent a malformed answer: {exc!r}") '
            "from exc\n",
            "        except (LookupError, TypeError) as exc:\n"
            '            raise ProviderError(f"the provider sent a malformed answer: {exc!r}") '
            "from exc\n",
        ),
    ),
    breaks=("retries.network", "errors.shape"),
    expected_failures=frozenset({"dropped_connections_and_timeouts_are_retried"}),
    from_brief=True,
)


# Retry-After and retry-after-ms.

RETRY_AFTER_MS_IGNORED = Mutant(
    "retry_after_ms_ignored",
    "Only Retry-After is read: retry-after-ms is ignored, so the app waits its own backoff, or "
    "the coarser Retry-After when both are sent.",
    (
        Edit(
            "retry.py",
            '    if (milliseconds := _number(headers.get("retry-after-ms"))) is not None:\n'
            "        wait = milliseconds / 1000\n"
            '    elif (seconds := _number(headers.get("retry-after"))) is not None:\n',
            '    if (seconds := _number(headers.get("retry-after"))) is not None:\n',
        ),
    ),
    breaks=("retries.retry_after",),
    expected_failures=frozenset({"retry_after_ms_comes_first"}),
    from_brief=True,
)


RETRY_AFTER_MS_READ_AS_SECONDS = Mutant(
    "retry_after_ms_read_as_seconds",
    "retry-after-ms is taken as seconds: a 300 ms wait becomes 300 s, past the longest honoured "
    "wait, so the app waits its own backoff instead.",
    (Edit("retry.py", "        wait = milliseconds / 1000\n", "        wait = milliseconds\n"),),
    breaks=("retries.retry_after",),
    expected_failures=frozenset({"retry_after_ms_comes_first"}),
    from_brief=True,
)


RETRY_AFTER_DATES_IGNORED = Mutant(
    "retry_after_dates_ignored",
    "Retry-After is read as a number of seconds only: an HTTP date is ignored, and the app waits "
    "its own backoff instead.",
    (
        Edit(
            "retry.py",
            '    elif (moment := _http_date(headers.get("retry-after"))) is not None:\n'
            "        wait = moment - time.time()\n",
            "",
        ),
    ),
    breaks=("retries.retry_after",),
    expected_failures=frozenset({"a_retry_after_date_is_honoured"}),
    from_brief=True,
)


RETRY_AFTER_AT_LEAST_BACKOFF = Mutant(
    "retry_after_at_least_backoff",
    "The provider's requested wait is a floor under the backoff, not a replacement for it: a "
    "Retry-After shorter than the backoff is waited too long.",
    (
        Edit(
            "retry.py",
            "            wait = requested_wait(error)\n"
            "            if wait is None:\n"
            "                wait = backoff(retry, settings)\n",
            "            wait = max(requested_wait(error) or 0.0, backoff(retry, settings))\n",
        ),
    ),
    breaks=("retries.retry_after",),
    expected_failures=frozenset({"retry_after_ms_comes_first"}),
    from_brief=True,
)


# The backoff: RETRY_BASE_DELAY * 2**n, capped at RETRY_MAX_DELAY, shrunk by up to a quarter.

BACKOFF_STARTS_AT_DOUBLE = Mutant(
    "backoff_starts_at_double",
    "The exponent counts from 1, not 0: the first retry waits twice RETRY_BASE_DELAY, and every "
    "later wait is twice too long.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(settings.retry_base_delay * 2.0 ** (retry + 1), "
            "settings.retry_max_delay)\n",
        ),
    ),
    breaks=("retries.backoff",),
    expected_failures=frozenset({"retries_are_jittered"}),
    from_brief=True,
)


BACKOFF_TIMES_FOR_POWER = Mutant(
    "backoff_times_for_power",
    "A typo, `2.0 * retry` for `2.0**retry`: the first retry comes at once, and the backoff grows "
    "linearly.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(settings.retry_base_delay * 2.0 * retry, settings.retry_max_delay)\n",
        ),
    ),
    breaks=("retries.backoff",),
    expected_failures=frozenset({"backoff_doubles", "retries_are_jittered"}),
    from_brief=True,
)


BACKOFF_BASE_HARD_CODED = Mutant(
    "backoff_base_hard_coded",
    "The first delay is the OpenAI SDK's 0.5 s, hard-coded, not RETRY_BASE_DELAY: every wait is "
    "as long as the SDK's.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(0.5 * 2.0**retry, settings.retry_max_delay)  # as the OpenAI SDK\n",
        ),
    ),
    breaks=("retries.backoff", "settings.env"),
    expected_failures=frozenset({"backoff_doubles", "retries_are_jittered"}),
    from_brief=True,
)


BACKOFF_CAP_HARD_CODED = Mutant(
    "backoff_cap_hard_coded",
    "The cap is the OpenAI SDK's 8 s, hard-coded, not RETRY_MAX_DELAY: under a smaller "
    "RETRY_MAX_DELAY the doubled waits grow past it.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(settings.retry_base_delay * 2.0**retry, 8.0)  # as the OpenAI SDK\n",
        ),
    ),
    breaks=("retries.cap", "settings.env"),
    expected_failures=frozenset({"backoff_is_capped"}),
    from_brief=True,
)


CAP_BEFORE_DOUBLING = Mutant(
    "cap_before_doubling",
    "The cap is applied to the base delay before it is doubled, so the doubled waits grow past "
    "RETRY_MAX_DELAY.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(settings.retry_base_delay, settings.retry_max_delay) * 2.0**retry\n",
        ),
    ),
    breaks=("retries.cap",),
    expected_failures=frozenset({"backoff_is_capped"}),
    from_brief=True,
)


JITTER_DRAWN_ONCE = Mutant(
    "jitter_drawn_once",
    "The random jitter is drawn once, when the app starts: every backoff is shrunk by the same "
    "factor, so clients that failed together still come back together. (Drawn from a seeded "
    "generator here, so that every grade sees the same factor.)",
    (
        Edit(
            "retry.py",
            "JITTER = 0.25  # each backoff is shrunk by up to this fraction, at random\n",
            "JITTER = 0.25  # each backoff is shrunk by up to this fraction, at random\n"
            "SHRINK = 1 - JITTER * random.Random(2).random()\n",
        ),
        Edit(
            "retry.py",
            "    return delay * (1 - JITTER * random.random())\n",
            "    return delay * SHRINK\n",
        ),
    ),
    breaks=("retries.jitter",),
    expected_failures=frozenset(),
    from_brief=True,
    uncaught="16 clients waiting the same shrunk backoff look, to a loaded machine's clock, like "
    "16 waiting different ones: telling them apart surely needs more waits side by side than "
    "a grade's time allows",
)


FULL_JITTER = Mutant(
    "full_jitter",
    "Full jitter (a random wait between 0 and the backoff) instead of a shrink of up to a quarter: "
    "many retries come almost at once. (Drawn from a generator seeded with the retry's number "
    "here, so that every grade sees the same waits.)",
    (
        Edit(
            "retry.py",
            "    return delay * (1 - JITTER * random.random())\n",
            "    return delay * random.Random(retry + 1).random()\n",
        ),
    ),
    breaks=("retries.jitter", "retries.backoff"),
    expected_failures=frozenset({"backoff_doubles", "retries_are_jittered"}),
    from_brief=True,
)


JITTER_IN_SECONDS = Mutant(
    "jitter_in_seconds",
    "The jitter takes up to a quarter of a second off the backoff, not a quarter of it: a short "
    "backoff drops to a fraction of itself, or to nothing. (Drawn from a seeded generator here, "
    "so that every grade sees the same waits.)",
    (
        Edit(
            "retry.py",
            "    return delay * (1 - JITTER * random.random())\n",
            "    return max(0.0, delay - JITTER * random.Random(5).random())\n",
        ),
    ),
    breaks=("retries.jitter", "retries.backoff"),
    expected_failures=frozenset({"backoff_doubles"}),
    from_brief=True,
)


JITTER_STRETCHES_BACKOFF = Mutant(
    "jitter_stretches_backoff",
    "The jitter lengthens the backoff by up to a quarter instead of shrinking it: waits run past "
    "the backoff, and past RETRY_MAX_DELAY once it is reached.",
    (
        Edit(
            "retry.py",
            "    return delay * (1 - JITTER * random.random())\n",
            "    return delay * (1 + JITTER * random.random())\n",
        ),
    ),
    breaks=("retries.jitter", "retries.backoff", "retries.cap"),
    expected_failures=frozenset({"retries_are_jittered"}),
    from_brief=True,
)


# MAX_ATTEMPTS: attempts on one model, the first included, wherever the app calls the model.

MAX_ATTEMPTS_COUNTS_RETRIES = Mutant(
    "max_attempts_counts_retries",
    "MAX_ATTEMPTS is taken as the number of retries: a failing model gets one attempt too many.",
    (
        Edit(
            "retry.py",
            "    for retry in range(settings.max_attempts - 1):\n",
            "    for retry in range(settings.max_attempts):\n",
        ),
    ),
    breaks=("retries.attempts",),
    expected_failures=frozenset({"a_failing_primary_is_left_alone", "attempts_are_bounded"}),
    from_brief=True,
)


ATTEMPTS_SHARED_WITH_FALLBACK = Mutant(
    "attempts_shared_with_fallback",
    "MAX_ATTEMPTS is read as the attempts of the whole request: the primary gets one fewer, "
    "keeping the last one for a single try of the fallback.",
    (
        Edit("fallback.py", "import functools\n", "import dataclasses\nimport functools\n"),
        Edit(
            "fallback.py",
            "                value = await with_retries(functools.partial(counted, model), "
            "settings, deadline)\n",
            "                # MAX_ATTEMPTS for the request: the last is the fallback's\n"
            "                budget = settings.max_attempts - 1 if model == settings.primary_model "
            "else 1\n"
            "                tries = dataclasses.replace(settings, max_attempts=budget)\n"
            "                value = await with_retries(functools.partial(counted, model), "
            "tries, deadline)\n",
        ),
    ),
    breaks=("retries.attempts", "fallback.not_recovering"),
    # Fewer than MAX_ATTEMPTS failures still get an answer, from the fallback after the last one.
    expected_failures=frozenset({"attempts_are_bounded", "backoff_doubles"}),
    from_brief=True,
)


FALLBACK_GETS_ONE_ATTEMPT = Mutant(
    "fallback_gets_one_attempt",
    "The fallback model is called once, without retries: a passing failure of the fallback fails "
    "an answer that its second attempt would have given.",
    (
        Edit(
            "fallback.py",
            "                value = await with_retries(functools.partial(counted, model), "
            "settings, deadline)\n",
            "                if model == settings.primary_model:\n"
            "                    value = await with_retries(\n"
            "                        functools.partial(counted, model), settings, deadline\n"
            "                    )\n"
            "                else:  # the last resort: no retries of its own\n"
            "                    value = await counted(model)\n",
        ),
    ),
    breaks=("retries.attempts",),
    expected_failures=frozenset({"attempts_are_bounded"}),
    from_brief=True,
)


EXTRACT_WITHOUT_RETRIES = Mutant(
    "extract_without_retries",
    "POST /api/extract gives each model a single attempt (its repair counts as the retry): a "
    "passing failure of the primary goes straight to the fallback model.",
    (
        Edit("extract.py", "import json\n", "import dataclasses\nimport json\n"),
        Edit(
            "extract.py",
            "            lambda model: self._llm.complete(messages, model, response_format=JSON),\n"
            "            self._settings,\n",
            "            lambda model: self._llm.complete(messages, model, response_format=JSON),\n"
            "            dataclasses.replace(self._settings, max_attempts=1),  # repairs retry\n",
        ),
    ),
    breaks=("retries.attempts", "retries.statuses", "retries.network"),
    expected_failures=frozenset({"extracting_a_card_gets_the_retries"}),
    reaches=("structured",),
    from_brief=True,
)


# Rejected requests: never retried, told with an error status and the error body.

REJECTED_ESCAPES_AS_500 = Mutant(
    "rejected_escapes_as_500",
    "A rejected request's ProviderError is re-raised as it is, not as an AnswerError: POST "
    "/api/answer says 500 in plain text, and the stream breaks off without an error event.",
    (
        Edit(
            "fallback.py",
            "                if isinstance(error, ProviderError):  # 400, 401, 403, 404, 422...\n"
            "                    raise UpstreamRejected("
            'f"The model refused the request: {error}") from error\n'
            "                raise  # a bug, not the provider: let it show\n",
            "                raise  # rejected (400, 401, 403, 404, 422...): nothing more to try\n",
        ),
    ),
    breaks=("retries.rejected", "errors.shape"),
    expected_failures=frozenset(
        {
            "extracting_a_card_gets_the_retries",
            "rejected_requests_are_not_retried",
        }
    ),
    from_brief=True,
)


RETRIES_404_AND_422 = Mutant(
    "retries_404_and_422",
    "Only 400, 401 and 403 are taken as rejections: every other error status is retried, 404 and "
    "422 included.",
    (
        Edit(
            "retry.py",
            "        return status is None or status in TRANSIENT_STATUSES or status >= 500\n",
            "        return status not in {400, 401, 403}  # a bad request, a bad key\n",
        ),
    ),
    breaks=("retries.rejected",),
    expected_failures=frozenset(
        {
            "rejected_requests_are_not_retried",
            "rejected_requests_do_not_fall_back",
        }
    ),
    from_brief=True,
)


BATCH_ITEM_TRIED_TWICE = Mutant(
    "batch_item_tried_twice",
    "A batch question that fails is asked once more before its item fails, whatever the failure: "
    "a rejected request is sent twice, and a model that is down gets twice MAX_ATTEMPTS.",
    (
        Edit(
            "jobs.py",
            "                answer = await self._answers.answer(item.question)\n",
            "                try:\n"
            "                    answer = await self._answers.answer(item.question)\n"
            "                except AnswerError:  # one more chance before the item fails\n"
            "                    answer = await self._answers.answer(item.question)\n",
        ),
    ),
    breaks=("retries.rejected", "retries.attempts"),
    expected_failures=frozenset({"a_batch_s_questions_get_the_retries"}),
    reaches=("jobs",),
    from_brief=True,
)


# Once a piece has reached the user: no new start, an error event.

FALLS_BACK_MID_STREAM = Mutant(
    "falls_back_mid_stream",
    "A stream the primary breaks off after its first pieces is finished by the fallback model: "
    "the user reads the start of one answer followed by the whole of another.",
    (
        Edit(
            "answers.py",
            "                piece = await _next_piece(pieces, deadline)\n",
            "                try:\n"
            "                    piece = await _next_piece(pieces, deadline)\n"
            "                except AnswerInterrupted:\n"
            "                    if served.fallback:\n"
            "                        raise\n"
            "                    # the primary broke off: the fallback finishes it\n"
            "                    fallback = self._settings.fallback_model\n"
            "                    served = Served(fallback, True, served.attempts + 1)\n"
            "                    pieces = self._llm.stream(messages, fallback)\n"
            "                    piece = await _next_piece(pieces, deadline)\n",
        ),
    ),
    breaks=("retries.not_after_tokens",),
    expected_failures=frozenset({"nothing_is_retried_once_tokens_were_sent"}),
    from_brief=True,
)


BROKEN_STREAM_ENDS_WITH_DONE = Mutant(
    "broken_stream_ends_with_done",
    "A stream that breaks off after its first pieces is not retried, but ends with done as if the "
    "answer were whole: no error event tells the user it was cut.",
    (
        Edit(
            "answers.py",
            "            if is_transient(error):\n"
            '                raise AnswerInterrupted("The answer broke off.") from error\n',
            "            if is_transient(error):\n"
            "                return None  # not retried once shown: the answer ends here\n",
        ),
    ),
    breaks=("retries.not_after_tokens",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
    from_brief=True,
)


# The deadline: a wait that would end after it is not waited.

SLEEPS_INTO_THE_DEADLINE = Mutant(
    "sleeps_into_the_deadline",
    "The time left is never compared with the wait: a Retry-After or backoff longer than what is "
    "left is slept into the deadline, a 504, instead of going to the fallback at once.",
    (
        Edit(
            "retry.py",
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n",
            "",
        ),
    ),
    breaks=("retries.deadline", "fallback.no_time"),
    expected_failures=frozenset({"fallback_rather_than_wait_past_the_deadline"}),
    from_brief=True,
)


WAIT_COMPARED_WITH_WHOLE_DEADLINE = Mutant(
    "wait_compared_with_whole_deadline",
    "The wait is compared with the whole REQUEST_DEADLINE, not with the time left of it: after "
    "slow attempts the app still sleeps past the deadline.",
    (
        Edit(
            "retry.py",
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n",
            "            if wait + (time.monotonic() - started) >= settings.request_deadline:\n",
        ),
    ),
    breaks=("retries.deadline", "fallback.no_time"),
    expected_failures=frozenset({"fallback_rather_than_wait_past_the_deadline"}),
    from_brief=True,
)


RETRY_AFTER_WAITED_PAST_DEADLINE = Mutant(
    "retry_after_waited_past_deadline",
    "Only the app's own backoff is checked against the time left: a Retry-After that ends past "
    "the deadline is waited anyway, and the request answers 504 instead of falling back.",
    (
        Edit(
            "retry.py",
            "                wait = backoff(retry, settings)\n"
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n",
            "                wait = backoff(retry, settings)\n"
            "                if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                    raise\n",
        ),
    ),
    breaks=("retries.deadline", "fallback.no_time"),
    expected_failures=frozenset({"fallback_rather_than_wait_past_the_deadline"}),
    from_brief=True,
)


# Odd answers: cut at their length, chunks that are not JSON.

LENGTH_RETRIED = Mutant(
    "length_retried",
    'A whole answer with finish_reason "length" is taken for a failure and retried, then sent to '
    "the fallback, though it is an answer to deliver as it is.",
    (
        Edit(
            "llm.py",
            '            text = body["choices"][0]["message"]["content"]\n',
            '            if body["choices"][0].get("finish_reason") == "length":\n'
            '                raise ProviderError("the answer was cut at its maximum length")\n'
            '            text = body["choices"][0]["message"]["content"]\n',
        ),
    ),
    breaks=("retries.length",),
    expected_failures=frozenset({"an_answer_ended_for_its_length_is_delivered"}),
    from_brief=True,
)


LENGTH_ENDS_STREAM_WITH_ERROR = Mutant(
    "length_ends_stream_with_error",
    'A stream whose answer ends with finish_reason "length" ends with an error event (or is '
    "retried, when no piece came before), not with done.",
    (
        Edit(
            "llm.py",
            "                for choice in chunk.get(\"choices\") or ():\n",
            "                for choice in chunk.get(\"choices\") or ():\n"
            '                    if choice.get("finish_reason") == "length":\n'
            '                        raise ProviderError('
            '"the answer was cut at its maximum length")\n',
        ),
    ),
    breaks=("retries.length",),
    expected_failures=frozenset({"an_answer_ended_for_its_length_is_delivered"}),
    from_brief=True,
)


MALFORMED_CHUNK_UNHANDLED = Mutant(
    "malformed_chunk_unhandled",
    "A chunk that is not JSON raises json's ValueError out of the stream: the stream breaks off "
    "with neither an error event nor done.",
    (
        Edit(
            "llm.py",
            "                try:\n"
            "                    chunk = json.loads(data)\n"
            "                except ValueError:\n"
            "                    chunk = None\n",
            "                chunk = json.loads(data)\n",
        ),
    ),
    breaks=("retries.malformed_chunk",),
    expected_failures=frozenset({"a_chunk_that_is_not_json_is_skipped_or_ends_the_stream"}),
    from_brief=True,
)


MALFORMED_CHUNK_SHOWN = Mutant(
    "malformed_chunk_shown",
    "A chunk that is not JSON is passed on to the user as text, as a best effort: the garbled "
    "data appears in the answer.",
    (
        Edit(
            "llm.py",
            "                except ValueError:\n"
            "                    chunk = None\n",
            "                except ValueError:  # not JSON: show what came rather than lose it\n"
            '                    chunk = {"choices": [{"delta": {"content": data}}]}\n',
        ),
    ),
    breaks=("retries.malformed_chunk",),
    expected_failures=frozenset({"a_chunk_that_is_not_json_is_skipped_or_ends_the_stream"}),
    from_brief=True,
)


MALFORMED_CHUNK_SWALLOWS_THE_REST = Mutant(
    "malformed_chunk_swallows_the_rest",
    "A chunk that is not JSON is kept as the start of a chunk split across lines, to prefix the "
    "next: every later chunk fails to parse too, and the answer ends early with done.",
    (
        Edit(
            "llm.py", "        usage = Usage()\n", '        usage = Usage()\n        pending = ""\n'
        ),
        Edit(
            "llm.py",
            "                try:\n"
            "                    chunk = json.loads(data)\n"
            "                except ValueError:\n"
            "                    chunk = None\n",
            "                try:\n"
            "                    chunk = json.loads(pending + data)\n"
            "                except ValueError:\n"
            "                    pending += data  # a chunk split across lines: wait for its end\n"
            "                    continue\n"
            '                pending = ""\n',
        ),
    ),
    breaks=("retries.malformed_chunk",),
    expected_failures=frozenset({"a_chunk_that_is_not_json_is_skipped_or_ends_the_stream"}),
    from_brief=True,
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
    RETRIES_ONLY_429_OF_4XX,
    RETRIES_5XX_ABOVE_500,
    STREAM_ERROR_BODY_UNREAD,
    EMPTY_FIRST_CHUNK_COMMITS_THE_STREAM,
    FORGETS_REMOTE_PROTOCOL_ERROR,
    CUT_STREAM_COUNTS_AS_FINISHED,
    GARBLED_BODY_ESCAPES,
    RETRY_AFTER_MS_IGNORED,
    RETRY_AFTER_MS_READ_AS_SECONDS,
    RETRY_AFTER_DATES_IGNORED,
    RETRY_AFTER_AT_LEAST_BACKOFF,
    BACKOFF_STARTS_AT_DOUBLE,
    BACKOFF_TIMES_FOR_POWER,
    BACKOFF_BASE_HARD_CODED,
    BACKOFF_CAP_HARD_CODED,
    CAP_BEFORE_DOUBLING,
    JITTER_DRAWN_ONCE,
    FULL_JITTER,
    JITTER_IN_SECONDS,
    JITTER_STRETCHES_BACKOFF,
    MAX_ATTEMPTS_COUNTS_RETRIES,
    ATTEMPTS_SHARED_WITH_FALLBACK,
    FALLBACK_GETS_ONE_ATTEMPT,
    EXTRACT_WITHOUT_RETRIES,
    REJECTED_ESCAPES_AS_500,
    RETRIES_404_AND_422,
    BATCH_ITEM_TRIED_TWICE,
    FALLS_BACK_MID_STREAM,
    BROKEN_STREAM_ENDS_WITH_DONE,
    SLEEPS_INTO_THE_DEADLINE,
    WAIT_COMPARED_WITH_WHOLE_DEADLINE,
    RETRY_AFTER_WAITED_PAST_DEADLINE,
    LENGTH_RETRIED,
    LENGTH_ENDS_STREAM_WITH_ERROR,
    MALFORMED_CHUNK_UNHANDLED,
    MALFORMED_CHUNK_SHOWN,
    MALFORMED_CHUNK_SWALLOWS_THE_REST,
]

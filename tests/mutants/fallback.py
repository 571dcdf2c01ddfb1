"""Mutants of the fallback task."""

from __future__ import annotations

from .edits import Edit, Mutant


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
    breaks=("fallback.unavailable",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
            "a_failing_primary_is_left_alone",
            "a_fallback_answer_counts_every_attempt",
            "a_stream_falls_back_too",
            "extracting_a_card_falls_back",
            "fallback_rather_than_wait_past_the_deadline",
            "the_fallback_answers_when_the_primary_is_down",
            "the_models_are_the_ones_the_settings_name",
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
    breaks=("fallback.not_rejected",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
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
    breaks=("fallback.not_recovering",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
            "a_failing_primary_is_left_alone",
            "an_answer_carries_typed_metadata",
            "backoff_doubles",
            "backoff_is_capped",
            "metadata_covers_every_attempt",
            "no_fallback_when_the_primary_recovers",
            "rejected_requests_do_not_fall_back",
            "the_breaker_closes_once_the_primary_is_back",
            "the_models_are_the_ones_the_settings_name",
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
            "    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cool_down)\n"
            "    if breaker.allows_call():\n",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"a_failing_primary_is_left_alone"}),
)


# -- written from the brief (issue 12) -------------------------------------------------------------

SLEEPS_BEFORE_THE_FALLBACK = Mutant(
    "sleeps_before_the_fallback",
    "The retry loop waits its backoff after every failed attempt, the last one included, so the "
    "fallback model is asked a whole backoff after the primary's last failure.",
    (
        Edit(
            "retry.py",
            "    for retry in range(settings.max_attempts - 1):\n",
            "    failure: Exception | None = None\n"
            "    for retry in range(settings.max_attempts):\n",
        ),
        Edit(
            "retry.py",
            "                raise\n"
            "        await anyio.sleep(wait)\n"
            "    return await attempt()  # the last one: its failure is final\n",
            "                raise\n"
            "            failure = error\n"
            "        await anyio.sleep(wait)\n"
            "    assert failure is not None\n"
            "    raise failure  # every attempt failed\n",
        ),
    ),
    breaks=("fallback.unavailable",),
    expected_failures=frozenset({"the_fallback_answers_when_the_primary_is_down"}),
    from_brief=True,
)


STREAM_ASKS_THE_PRIMARY_ONLY = Mutant(
    "stream_asks_the_primary_only",
    "The stream's attempt names PRIMARY_MODEL instead of the model it is given, so with the "
    "primary down its fallback attempts go to the primary too and the stream ends in an error.",
    (
        Edit(
            "answers.py",
            "lambda model: _first_piece(self._llm.stream(messages, model)),",
            "lambda model: _first_piece(self._llm.stream(messages, self._settings.primary_model)),",
        ),
    ),
    breaks=("fallback.unavailable",),
    expected_failures=frozenset({"a_stream_falls_back_too"}),
    from_brief=True,
)


EXTRACT_ASKS_THE_PRIMARY_ONLY = Mutant(
    "extract_asks_the_primary_only",
    "The extract call was wrapped in the fallback but still names PRIMARY_MODEL, so with the "
    "primary down its fallback attempts go to the primary too and extraction fails.",
    (
        Edit(
            "extract.py",
            "        completion, _ = await with_fallback(\n"
            "            lambda model: self._llm.complete("
            "messages, model, response_format=JSON),\n",
            "        primary = self._settings.primary_model\n"
            "        completion, _ = await with_fallback(\n"
            "            lambda model: self._llm.complete("
            "messages, primary, response_format=JSON),\n",
        ),
    ),
    breaks=("fallback.unavailable",),
    expected_failures=frozenset({"extracting_a_card_falls_back"}),
    reaches=("structured",),
    from_brief=True,
)


FALLS_BACK_ON_ERROR_STATUSES_ONLY = Mutant(
    "falls_back_on_error_statuses_only",
    "Only error statuses (429, 5xx) send a request to the fallback: a primary that times out or "
    "drops the connection is retried, then the request fails with 503.",
    (
        Edit(
            "fallback.py",
            "                if is_transient(error):\n                    last_error = error\n",
            "                if isinstance(error, ProviderError) and is_transient(error):\n"
            "                    last_error = error\n",
        ),
        Edit(
            "fallback.py",
            "                raise  # a bug, not the provider: let it show\n",
            "                raise UpstreamUnavailable(\"The model is unavailable right now.\") "
            "from error\n",
        ),
    ),
    breaks=("fallback.unavailable",),
    expected_failures=frozenset({"the_models_are_the_ones_the_settings_name"}),
    from_brief=True,
)


NO_TIME_LEFT_IS_A_504 = Mutant(
    "no_time_left_is_a_504",
    "When the next wait would end past the deadline the request gives up with a 504 at once, "
    "instead of asking the fallback model.",
    (
        Edit(
            "retry.py",
            "from .deadline import Deadline\n",
            "from .deadline import Deadline\nfrom .errors import DeadlineExceeded\n",
        ),
        Edit(
            "retry.py",
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n",
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise DeadlineExceeded(\"No time left to ask the model again.\") "
            "from error\n",
        ),
    ),
    breaks=("fallback.no_time",),
    expected_failures=frozenset({"fallback_rather_than_wait_past_the_deadline"}),
    from_brief=True,
)


DEADLINE_CHECKED_BEFORE_RETRY_AFTER = Mutant(
    "deadline_checked_before_retry_after",
    "The time left is checked against the backoff before Retry-After replaces it, so a provider "
    "asking for a wait past the deadline is waited for, and the request ends in a 504.",
    (
        Edit(
            "retry.py",
            "            wait = requested_wait(error)\n"
            "            if wait is None:\n"
            "                wait = backoff(retry, settings)\n"
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n",
            "            wait = backoff(retry, settings)\n"
            "            if wait + (time.monotonic() - started) >= deadline.remaining():\n"
            "                raise\n"
            "            wait = requested_wait(error) or wait  # the provider knows best\n",
        ),
    ),
    breaks=("fallback.no_time",),
    expected_failures=frozenset({"fallback_rather_than_wait_past_the_deadline"}),
    from_brief=True,
)


REPORTS_THE_CONFIGURED_MODEL = Mutant(
    "reports_the_configured_model",
    "The answer's `model` is always PRIMARY_MODEL, the configured one: an answer from the fallback "
    "says fallback true but names the primary.",
    (
        Edit(
            "fallback.py",
            "return value, Served(model, model != settings.primary_model, attempts)",
            "return value, Served("
            "settings.primary_model, model != settings.primary_model, attempts)",
        ),
    ),
    breaks=("fallback.says_so",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
            "a_fallback_answer_counts_every_attempt",
            "a_stream_falls_back_too",
            "fallback_rather_than_wait_past_the_deadline",
            "the_fallback_answers_when_the_primary_is_down",
            "the_models_are_the_ones_the_settings_name",
        }
    ),
    from_brief=True,
)


FALLBACK_MEANS_RETRIED = Mutant(
    "fallback_means_retried",
    "`fallback` is true whenever the answer took more than one call, so a primary that answered "
    "on its retry is reported as the fallback.",
    (
        Edit(
            "fallback.py",
            "return value, Served(model, model != settings.primary_model, attempts)",
            "return value, Served(model, attempts > 1, attempts)",
        ),
    ),
    breaks=("fallback.says_so",),
    expected_failures=frozenset({"no_fallback_when_the_primary_recovers"}),
    from_brief=True,
)


STREAM_DONE_NAMES_THE_PRIMARY = Mutant(
    "stream_done_names_the_primary",
    "The stream's done event was written before the fallback: it names PRIMARY_MODEL with "
    "fallback false, whichever model wrote the answer.",
    (
        Edit(
            "answers.py",
            "        yield Metadata(served, usage, time.monotonic() - started)\n",
            "        served = Served(self._settings.primary_model, False, served.attempts)\n"
            "        yield Metadata(served, usage, time.monotonic() - started)\n",
        ),
    ),
    breaks=("fallback.says_so",),
    expected_failures=frozenset({"a_stream_falls_back_too"}),
    from_brief=True,
)


FALLS_BACK_ON_A_MISSING_MODEL = Mutant(
    "falls_back_on_a_missing_model",
    "A 404 is taken for \"the primary model is gone\" and the request goes to the fallback model, "
    "though the provider rejected the request.",
    (
        Edit(
            "fallback.py",
            "                if is_transient(error):\n                    last_error = error\n",
            "                if is_transient(error) or getattr(error, \"status\", None) == 404:\n"
            "                    last_error = error\n",
        ),
    ),
    breaks=("fallback.not_rejected",),
    expected_failures=frozenset({"rejected_requests_do_not_fall_back"}),
    from_brief=True,
)


FALLS_BACK_ON_AUTH_ERRORS = Mutant(
    "falls_back_on_auth_errors",
    "A 401 or 403 is taken for the key having no access to the primary model, and the request "
    "goes to the fallback model.",
    (
        Edit(
            "fallback.py",
            "                if is_transient(error):\n                    last_error = error\n",
            "                denied = isinstance(error, ProviderError) "
            "and error.status in (401, 403)\n"
            "                if is_transient(error) or denied:\n"
            "                    last_error = error\n",
        ),
    ),
    breaks=("fallback.not_rejected",),
    expected_failures=frozenset({"rejected_requests_do_not_fall_back"}),
    from_brief=True,
)


FALLS_BACK_ON_RATE_LIMITS = Mutant(
    "falls_back_on_rate_limits",
    "A 429 is not retried but sent straight to the fallback model (the primary is busy, ask the "
    "small one), even when Retry-After asks for a short wait.",
    (
        Edit(
            "retry.py",
            "            if not is_transient(error):\n                raise\n",
            "            busy = isinstance(error, ProviderError) and error.status == 429\n"
            "            if not is_transient(error) or busy:\n                raise\n",
        ),
    ),
    breaks=("fallback.not_recovering",),
    expected_failures=frozenset(
        {
            "a_retry_after_date_is_honoured",
            "any_few_passing_failures_still_give_the_answer",
            "no_fallback_when_the_primary_recovers",
            "retry_after_is_honoured",
            "retry_after_ms_comes_first",
        }
    ),
    from_brief=True,
)


PRIMARY_GETS_ONE_ATTEMPT = Mutant(
    "primary_gets_one_attempt",
    "The fallback model is taken for the primary's retry: one transient failure of the primary "
    "sends the request to the fallback, which alone is retried.",
    (
        Edit(
            "fallback.py",
            "                value = await with_retries("
            "functools.partial(counted, model), settings, deadline)\n",
            "                retried = model != settings.primary_model"
            "  # the fallback is the retry\n"
            "                call = functools.partial(counted, model)\n"
            "                value = await (with_retries(call, settings, deadline) if retried "
            "else call())\n",
        ),
    ),
    breaks=("fallback.not_recovering",),
    expected_failures=frozenset(
        {
            "a_retry_after_date_is_honoured",
            "attempts_are_bounded",
            "backoff_doubles",
            "backoff_is_capped",
            "extracting_a_card_gets_the_retries",
            "no_fallback_when_the_primary_recovers",
            "retries_are_jittered",
            "retry_after_is_honoured",
            "retry_after_ms_comes_first",
        }
    ),
    from_brief=True,
)


STREAM_FALLS_BACK_WITHOUT_RETRYING = Mutant(
    "stream_falls_back_without_retrying",
    "The stream gives each model a single attempt (a stream must not be started again), so one "
    "failure before its first piece sends it to the fallback model.",
    (
        Edit(
            "answers.py",
            "            lambda model: _first_piece(self._llm.stream(messages, model)),\n"
            "            self._settings,\n",
            "            lambda model: _first_piece(self._llm.stream(messages, model)),\n"
            "            dataclasses.replace(self._settings, max_attempts=1),  # never restart\n",
        ),
    ),
    breaks=("fallback.not_recovering",),
    expected_failures=frozenset({"no_fallback_when_the_primary_recovers"}),
    from_brief=True,
)


BREAKER_OPEN_UNTIL_A_SUCCESS = Mutant(
    "breaker_open_until_a_success",
    "The breaker stays open while its failure count is at BREAKER_FAILURES, which only a success "
    "resets: the primary, no longer called, is never tried again after the cool-down.",
    (
        Edit(
            "breaker.py",
            "        if now < self._open_until:\n",
            "        if self._failures >= self._failures_to_open:  # still failing\n",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"the_breaker_closes_once_the_primary_is_back"}),
    from_brief=True,
)


BREAKER_COOL_DOWN_IN_MILLISECONDS = Mutant(
    "breaker_cool_down_in_milliseconds",
    "BREAKER_COOL_DOWN is read as milliseconds: the breaker opens for a few hundredths of a "
    "second, and the next request calls the failing primary again.",
    (
        Edit(
            "breaker.py",
            "        self._cool_down = cool_down\n",
            "        self._cool_down = cool_down / 1000  # milliseconds\n",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"a_failing_primary_is_left_alone"}),
    from_brief=True,
)


BREAKER_COUNTS_FAILURES_NOT_IN_A_ROW = Mutant(
    "breaker_counts_failures_not_in_a_row",
    "A success closes the breaker but does not reset its count, so BREAKER_FAILURES failures "
    "spread over many requests open it while the primary is answering.",
    (
        Edit(
            "breaker.py",
            "        self._failures = 0\n        self._open_until = None\n\n    def failed",
            "        self._open_until = None\n\n    def failed",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"a_failing_primary_is_left_alone"}),
    from_brief=True,
)


BREAKER_OPENS_ONE_FAILURE_LATE = Mutant(
    "breaker_opens_one_failure_late",
    "The breaker opens once the failures in a row exceed BREAKER_FAILURES, not reach it: one "
    "failed call too many.",
    (
        Edit(
            "breaker.py",
            "        if self._failures >= self._failures_to_open:\n",
            "        if self._failures > self._failures_to_open:\n",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"a_failing_primary_is_left_alone"}),
    from_brief=True,
)


BREAKER_NOT_CLOSED_BY_SUCCESS = Mutant(
    "breaker_not_closed_by_success",
    "A success resets the breaker's count but not its open-until time: after the primary answers "
    "its trial call, requests still go to the fallback for another cool-down.",
    (
        Edit(
            "breaker.py",
            "        self._failures = 0\n        self._open_until = None\n\n    def failed",
            "        self._failures = 0\n\n    def failed",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset({"the_breaker_closes_once_the_primary_is_back"}),
    from_brief=True,
)


MUTANTS: list[Mutant] = [
    NO_FALLBACK,
    FALLS_BACK_ON_CLIENT_ERRORS,
    ALWAYS_FALLBACK,
    NO_CIRCUIT_BREAKER,
    SLEEPS_BEFORE_THE_FALLBACK,
    STREAM_ASKS_THE_PRIMARY_ONLY,
    EXTRACT_ASKS_THE_PRIMARY_ONLY,
    FALLS_BACK_ON_ERROR_STATUSES_ONLY,
    NO_TIME_LEFT_IS_A_504,
    DEADLINE_CHECKED_BEFORE_RETRY_AFTER,
    REPORTS_THE_CONFIGURED_MODEL,
    FALLBACK_MEANS_RETRIED,
    STREAM_DONE_NAMES_THE_PRIMARY,
    FALLS_BACK_ON_A_MISSING_MODEL,
    FALLS_BACK_ON_AUTH_ERRORS,
    FALLS_BACK_ON_RATE_LIMITS,
    PRIMARY_GETS_ONE_ATTEMPT,
    STREAM_FALLS_BACK_WITHOUT_RETRYING,
    BREAKER_OPEN_UNTIL_A_SUCCESS,
    BREAKER_COOL_DOWN_IN_MILLISECONDS,
    BREAKER_COUNTS_FAILURES_NOT_IN_A_ROW,
    BREAKER_OPENS_ONE_FAILURE_LATE,
    BREAKER_NOT_CLOSED_BY_SUCCESS,
]

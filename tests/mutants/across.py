"""Mutants of what every task asks: the error shape, a responsive app, the settings."""

from __future__ import annotations

from .edits import Edit, Mutant


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
    breaks=("errors.shape",),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "attempts_are_bounded",
            "every_failure_is_told_in_the_error_shape",
            "rejected_requests_are_not_retried",
            "retries_stop_at_the_deadline",
            "the_deadline_counts_every_attempt",
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
    breaks=("app.responsive",),
    expected_failures=frozenset({"streams_run_side_by_side"}),
)


# -- written from the brief (issue 12) -----------------------------------------------------------

TO_JSON = '        return {"code": self.code, "message": str(self), "retryable": self.retryable}\n'

PROVIDER_REJECTION_ESCAPES = Mutant(
    "provider_rejection_escapes",
    "A request the provider rejected (400, 401, 403, 404, 422) is re-raised as the provider's own "
    "error, which no handler catches: the user gets a plain-text 500.",
    (
        Edit(
            "fallback.py",
            "                if isinstance(error, ProviderError):  # 400, 401, 403, 404, 422...\n"
            "                    raise UpstreamRejected("
            'f"The model refused the request: {error}") from error\n'
            "                raise  # a bug, not the provider: let it show\n",
            "                raise  # 400, 401, 403, 404, 422: the provider's message says what is "
            "wrong\n",
        ),
    ),
    breaks=("errors.shape", "retries.rejected"),
    expected_failures=frozenset(
        {
            "extracting_a_card_gets_the_retries",
            "rejected_requests_are_not_retried",
        }
    ),
    from_brief=True,
)

INVALID_JSON_BODY_IS_A_500 = Mutant(
    "invalid_json_body_is_a_500",
    "POST /api/answer and the stream read their body with request.json() unguarded: a body that "
    "is not JSON, or not an object, is a plain-text 500, not a 400 with the error body.",
    (
        Edit(
            "app.py",
            "    try:\n"
            "        body = await request.json()\n"
            "    except ValueError:\n"
            "        body = None\n"
            '    question = body.get("question") if isinstance(body, dict) else None\n',
            "    body = await request.json()\n"
            '    question = body.get("question")\n',
        ),
    ),
    breaks=("errors.shape",),
    expected_failures=frozenset({"every_failure_is_told_in_the_error_shape"}),
    from_brief=True,
)

ERRORS_WRAPPED_LIKE_OPENAI = Mutant(
    "errors_wrapped_like_openai",
    'Errors are wrapped as the provider wraps its own, {"error": {code, message, retryable}}: '
    "no endpoint's error body, nor the stream's error event, has the fields at the top.",
    (
        Edit(
            "errors.py",
            TO_JSON,
            "        return {  # type: ignore[return-value]\n"
            '            "error": {"code": self.code, "message": str(self), '
            '"retryable": self.retryable}\n'
            "        }\n",
        ),
    ),
    breaks=("errors.shape",),
    expected_failures=frozenset(
        {
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_batch_s_questions_get_the_retries",
            "a_card_s_repair_shares_the_deadline",
            "a_failure_midway_ends_with_an_error_event",
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "a_stream_with_every_model_down_ends_with_an_error",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "an_unknown_paper_is_a_400",
            "attempts_are_bounded",
            "every_failure_is_told_in_the_error_shape",
            "extracting_a_card_gets_the_retries",
            "one_failure_does_not_fail_the_batch",
            "output_that_stays_invalid_is_a_502",
            "rejected_requests_are_not_retried",
            "retries_stop_at_the_deadline",
            "the_deadline_counts_every_attempt",
            "unknown_jobs_and_wrong_batches_get_clear_errors",
        }
    ),
    from_brief=True,
)

CODE_IS_THE_STATUS_NUMBER = Mutant(
    "code_is_the_status_number",
    'The error body\'s "code" is the HTTP status, a number (503), not a string that names the '
    "failure.",
    (
        Edit(
            "errors.py",
            TO_JSON,
            '        return {"code": self.status_code, "message": str(self), '
            '"retryable": self.retryable}\n',
        ),
    ),
    breaks=("errors.shape",),
    expected_failures=frozenset(
        {
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_batch_s_questions_get_the_retries",
            "a_card_s_repair_shares_the_deadline",
            "a_failure_midway_ends_with_an_error_event",
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "an_unknown_paper_is_a_400",
            "every_failure_is_told_in_the_error_shape",
            "extracting_a_card_gets_the_retries",
            "one_failure_does_not_fail_the_batch",
            "output_that_stays_invalid_is_a_502",
            "unknown_jobs_and_wrong_batches_get_clear_errors",
        }
    ),
    from_brief=True,
)

EXTRACT_ERRORS_ANSWER_200 = Mutant(
    "extract_errors_answer_200",
    "POST /api/extract answers its errors with the right body but no status: 200, as if the card "
    "were there.",
    (
        Edit(
            "extract.py",
            "        return JSONResponse(error.to_json(), status_code=error.status_code)\n",
            "        return JSONResponse(error.to_json())\n",
        ),
    ),
    breaks=("errors.shape",),
    expected_failures=frozenset(
        {
            "a_card_s_repair_shares_the_deadline",
            "an_unknown_paper_is_a_400",
            "extracting_a_card_gets_the_retries",
            "output_that_stays_invalid_is_a_502",
        }
    ),
    reaches=("structured",),
    from_brief=True,
)

BLOCKING_BACKOFF_SLEEP = Mutant(
    "blocking_backoff_sleep",
    "The wait between two attempts is time.sleep, not an await: while one user's answer backs "
    "off, the whole app stops answering everyone.",
    (Edit("retry.py", "        await anyio.sleep(wait)\n", "        time.sleep(wait)\n"),),
    breaks=("app.responsive",),
    expected_failures=frozenset({"a_retry_s_wait_does_not_hold_up_others", "retries_are_jittered"}),
    from_brief=True,
)

SERIALISES_ANSWERS = Mutant(
    "serialises_answers",
    "A lock around the shared calls (to keep their dict safe from concurrent requests) lets one "
    "answer be asked at a time: a slow answer holds up every other question.",
    (
        Edit("answers.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "answers.py",
            "        self._shared: SharedCalls[Answer] = SharedCalls()\n",
            "        self._shared: SharedCalls[Answer] = SharedCalls()\n"
            "        self._shared_lock = asyncio.Lock()  # one request at a time in _shared\n",
        ),
        Edit(
            "answers.py",
            "        answer = await self._shared.run(question, lambda: self._answer(question))\n",
            "        async with self._shared_lock:\n"
            "            answer = await self._shared.run("
            "question, lambda: self._answer(question))\n",
        ),
    ),
    breaks=("app.responsive",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_failed_question_gives_its_turn_back",
            "a_retry_s_wait_does_not_hold_up_others",
            "a_shared_answer_stops_when_the_last_tab_closes",
            "a_shared_answer_survives_one_tab_closing",
            "other_questions_do_not_wait_for_a_batch",
            "progress_shows_what_the_model_is_doing",
            "retries_are_jittered",
        }
    ),
    from_brief=True,
)

CAP_ON_EVERY_ANSWER = Mutant(
    "cap_on_every_answer",
    "MAX_CONCURRENCY is applied in the LLM client, to every call, not to batch work only: while "
    "a batch holds the slots, a user's question waits behind it.",
    (
        Edit("llm.py", "import json\n", "import asyncio\nimport json\n"),
        Edit(
            "llm.py",
            "    def __init__(self, settings: Settings) -> None:\n",
            "    def __init__(self, settings: Settings) -> None:\n"
            "        self._slots = asyncio.Semaphore(settings.max_concurrency)\n",
        ),
        Edit(
            "llm.py",
            '        response = await self._http.post("/chat/completions", json=body)\n',
            "        async with self._slots:\n"
            '            response = await self._http.post("/chat/completions", json=body)\n',
        ),
        Edit(
            "llm.py",
            '        async with self._http.stream("POST", "/chat/completions", json=body) as '
            "response:\n",
            "        async with self._slots, self._http.stream(\n"
            '            "POST", "/chat/completions", json=body\n'
            "        ) as response:\n",
        ),
    ),
    breaks=("app.responsive",),
    expected_failures=frozenset({"other_questions_do_not_wait_for_a_batch"}),
    from_brief=True,
)

BACKOFF_DELAYS_HARD_CODED = Mutant(
    "backoff_delays_hard_coded",
    "The backoff uses the OpenAI SDK's own constants, 0.5 s doubling up to 8 s, not "
    "RETRY_BASE_DELAY and RETRY_MAX_DELAY: retries wait several times what the grader set.",
    (
        Edit(
            "retry.py",
            "    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)\n",
            "    delay = min(0.5 * 2.0**retry, 8.0)  # the OpenAI SDK's own delays\n",
        ),
    ),
    breaks=("settings.env", "retries.backoff"),
    expected_failures=frozenset({"backoff_doubles", "backoff_is_capped", "retries_are_jittered"}),
    from_brief=True,
)

READ_TIMEOUT_HARD_CODED = Mutant(
    "read_timeout_hard_coded",
    "The HTTP client gets the OpenAI SDK's timeouts (600 s, 5 s to connect), not LLM_READ_TIMEOUT "
    "and LLM_CONNECT_TIMEOUT: a stalled call is only ended by the deadline, never retried.",
    (
        Edit(
            "llm.py",
            "            timeout=httpx.Timeout(settings.read_timeout, "
            "connect=settings.connect_timeout),\n",
            "            timeout=httpx.Timeout(600.0, connect=5.0),  # as the OpenAI SDK\n",
        ),
    ),
    breaks=("settings.env",),
    expected_failures=frozenset({"dropped_connections_and_timeouts_are_retried"}),
    from_brief=True,
)

FALLBACK_MODEL_HARD_CODED = Mutant(
    "fallback_model_hard_coded",
    'The fallback is "fake-small", written in the code, not FALLBACK_MODEL: with another '
    "fallback model set, the app asks for the wrong one.",
    (
        Edit(
            "fallback.py",
            "        models = (settings.primary_model, settings.fallback_model)\n",
            '        models = (settings.primary_model, "fake-small")\n',
        ),
    ),
    breaks=("settings.env",),
    expected_failures=frozenset({"the_models_are_the_ones_the_settings_name"}),
    from_brief=True,
)

MUTANTS: list[Mutant] = [
    SWALLOWS_ERRORS,
    SERIALISES_STREAMS,
    PROVIDER_REJECTION_ESCAPES,
    INVALID_JSON_BODY_IS_A_500,
    ERRORS_WRAPPED_LIKE_OPENAI,
    CODE_IS_THE_STATUS_NUMBER,
    EXTRACT_ERRORS_ANSWER_200,
    BLOCKING_BACKOFF_SLEEP,
    SERIALISES_ANSWERS,
    CAP_ON_EVERY_ANSWER,
    BACKOFF_DELAYS_HARD_CODED,
    READ_TIMEOUT_HARD_CODED,
    FALLBACK_MODEL_HARD_CODED,
]

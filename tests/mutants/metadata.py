"""Mutants of the metadata task: an answer's model, attempts, usage, latency and request id."""

from __future__ import annotations

from .edits import Edit, Mutant

USAGE_COUNTED_BY_THE_APP = Mutant(
    "usage_counted_by_the_app",
    "The JSON endpoint's usage is the app's own word count, not what the provider reported.",
    (
        Edit(
            "llm.py",
            'return Completion(text, body["model"], Usage.from_json(body.get("usage")))',
            "prompt = sum(len(message['content'].split()) for message in messages)\n"
            '            return Completion(text, body["model"], Usage(prompt, len(text.split())))',
        ),
    ),
    breaks=("metadata.usage",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "an_answer_carries_typed_metadata",
            "metadata_covers_every_attempt",
        }
    ),
)

STREAM_WITHOUT_USAGE = Mutant(
    "stream_without_usage",
    "The stream never asks the provider for its usage, so the done event reports zero tokens.",
    (
        Edit(
            "llm.py",
            '            "stream_options": {"include_usage": True},'
            "  # else a stream reports no usage at all\n",
            "",
        ),
    ),
    breaks=("metadata.usage",),
    expected_failures=frozenset({"the_done_event_carries_the_metadata"}),
)

LATENCY_OF_THE_LAST_CALL = Mutant(
    "latency_of_the_last_call",
    "latency_ms is the provider's response time (httpx's `response.elapsed`) for the last call "
    "only, leaving out failed attempts and the waits between them.",
    (
        Edit("llm.py", "    usage: Usage\n", "    usage: Usage\n    elapsed: float = 0.0\n"),
        Edit(
            "llm.py",
            'return Completion(text, body["model"], Usage.from_json(body.get("usage")))',
            'usage = Usage.from_json(body.get("usage"))\n'
            '            return Completion(text, body["model"], usage, '
            "response.elapsed.total_seconds())",
        ),
        Edit(
            "answers.py",
            "metadata = Metadata(served, completion.usage, time.monotonic() - started)",
            "metadata = Metadata(served, completion.usage, completion.elapsed)",
        ),
        Edit(
            "answers.py",
            "        metadata = dataclasses.replace(answer.metadata, "
            "latency=time.monotonic() - started)\n"
            "        return dataclasses.replace(answer, metadata=metadata)\n",
            "        return answer\n",
        ),
    ),
    breaks=("metadata.latency",),
    expected_failures=frozenset(
        {
            "a_tab_joining_a_shared_answer_reports_its_own_latency",
            "metadata_covers_every_attempt",
        }
    ),
)

LATENCY_IN_SECONDS = Mutant(
    "latency_in_seconds",
    "latency_ms holds seconds, rounded to the millisecond, instead of milliseconds.",
    (
        Edit(
            "answers.py",
            '"latency_ms": round(self.latency * 1000),',
            '"latency_ms": round(self.latency, 3),',
        ),
    ),
    breaks=("metadata.latency",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "a_tab_joining_a_shared_answer_reports_its_own_latency",
            "an_answer_carries_typed_metadata",
            "every_answer_has_a_request_id",
            "latency_is_the_time_the_user_waited",
            "metadata_covers_every_attempt",
            "the_done_event_carries_the_metadata",
        }
    ),
)

ATTEMPTS_COUNT_RETRIES = Mutant(
    "attempts_count_retries",
    "attempts counts the retries, not the calls: 0 for an answer that came at the first try.",
    (
        Edit(
            "fallback.py",
            "return value, Served(model, model != settings.primary_model, attempts)",
            "return value, Served(model, model != settings.primary_model, attempts - 1)",
        ),
    ),
    breaks=("metadata.attempts",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "an_answer_carries_typed_metadata",
            "metadata_covers_every_attempt",
            "the_done_event_carries_the_metadata",
        }
    ),
)

REQUEST_ID_IGNORES_THE_CLIENT = Mutant(
    "request_id_ignores_the_client",
    "Every request gets a new id, even when the client sent its own X-Request-ID.",
    (
        Edit(
            "request_id.py",
            "request_id = given if _SENSIBLE.fullmatch(given) else uuid.uuid4().hex",
            "request_id = uuid.uuid4().hex",
        ),
    ),
    breaks=("metadata.request_id",),
    expected_failures=frozenset(
        {
            "error_replies_carry_the_request_id",
            "every_answer_has_a_request_id",
            "every_response_carries_the_request_id",
        }
    ),
)

REQUEST_ID_ONLY_ON_ANSWERS = Mutant(
    "request_id_only_on_answers",
    "The X-Request-ID header is set on successful responses only, not on errors.",
    (
        Edit(
            "request_id.py",
            'if message["type"] == "http.response.start":',
            'if message["type"] == "http.response.start" and message["status"] == 200:',
        ),
    ),
    breaks=("metadata.request_id",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "error_replies_carry_the_request_id",
            "every_response_carries_the_request_id",
        }
    ),
)

# -- written from the brief (issue 12) -------------------------------------------------------------

# Edits in jobs.py only, which only the batch and job endpoints use.
ONLY_JOBS = ("jobs",)

LATENCY_MS_AS_A_FLOAT = Mutant(
    "latency_ms_as_a_float",
    "latency_ms is not rounded: a float of milliseconds (812.3456...) instead of a whole number.",
    (
        Edit(
            "answers.py",
            '"latency_ms": round(self.latency * 1000),',
            '"latency_ms": self.latency * 1000,',
        ),
    ),
    breaks=("metadata.fields", "metadata.latency"),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "a_tab_joining_a_shared_answer_reports_its_own_latency",
            "an_answer_carries_typed_metadata",
            "every_answer_has_a_request_id",
            "latency_is_the_time_the_user_waited",
            "metadata_covers_every_attempt",
            "the_done_event_carries_the_metadata",
        }
    ),
    from_brief=True,
)

USAGE_AS_TOTAL_TOKENS = Mutant(
    "usage_as_total_tokens",
    "usage is one number, the total of the tokens, instead of the provider's object with "
    "prompt_tokens and completion_tokens.",
    (
        Edit(
            "answers.py",
            '"usage": dataclasses.asdict(self.usage),',
            '"usage": self.usage.prompt_tokens + self.usage.completion_tokens,',
        ),
    ),
    breaks=("metadata.fields",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "a_tab_joining_a_shared_answer_reports_its_own_latency",
            "an_answer_carries_typed_metadata",
            "every_answer_has_a_request_id",
            "latency_is_the_time_the_user_waited",
            "metadata_covers_every_attempt",
            "the_done_event_carries_the_metadata",
        }
    ),
    from_brief=True,
)

FALLBACK_NAMES_THE_MODEL = Mutant(
    "fallback_names_the_model",
    "`fallback` holds the fallback model's name when it answered and null otherwise, not a "
    "boolean.",
    (
        Edit(
            "answers.py",
            "            **dataclasses.asdict(self.served),\n",
            "            **dataclasses.asdict(self.served),\n"
            '            "fallback": self.served.model if self.served.fallback else None,\n',
        ),
    ),
    breaks=("metadata.fields", "fallback.says_so"),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_batch_s_questions_fall_back",
            "a_fallback_answer_counts_every_attempt",
            "a_stream_falls_back_too",
            "a_tab_joining_a_shared_answer_reports_its_own_latency",
            "an_answer_carries_typed_metadata",
            "every_answer_has_a_request_id",
            "latency_is_the_time_the_user_waited",
            "metadata_covers_every_attempt",
            "no_fallback_when_the_primary_recovers",
            "the_done_event_carries_the_metadata",
            "the_fallback_answers_when_the_primary_is_down",
        }
    ),
    from_brief=True,
)

DONE_EVENT_WITHOUT_REQUEST_ID = Mutant(
    "done_event_without_request_id",
    "The stream's done event carries the answer's metadata without its request_id (only "
    "POST /api/answer adds it).",
    (
        Edit(
            "streaming.py",
            'yield _event("done", {**event.to_json(), "request_id": request_id})',
            'yield _event("done", event.to_json())',
        ),
    ),
    breaks=("metadata.fields", "metadata.request_id"),
    expected_failures=frozenset({"the_done_event_carries_the_metadata"}),
    from_brief=True,
)

BATCH_RESULT_WITHOUT_REQUEST_ID = Mutant(
    "batch_result_without_request_id",
    "A batch item's result is the answer's JSON without a request_id: the batch's id is never "
    "passed down to it.",
    (
        Edit(
            "jobs.py",
            'item.result = {**answer.to_json(), "request_id": request_id}',
            "item.result = answer.to_json()",
        ),
    ),
    breaks=("metadata.fields", "metadata.request_id"),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_result_carries_the_metadata",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

ATTEMPTS_COUNTED_PER_MODEL = Mutant(
    "attempts_counted_per_model",
    "attempts starts again from 0 for each model, so an answer from the fallback counts only the "
    "fallback's calls, not the primary's before it.",
    (
        Edit(
            "fallback.py",
            "        for model in models:\n            try:\n",
            "        for model in models:\n"
            "            attempts = 0  # the calls to this model\n"
            "            try:\n",
        ),
    ),
    breaks=("metadata.attempts",),
    expected_failures=frozenset({"a_fallback_answer_counts_every_attempt"}),
    from_brief=True,
)

ATTEMPTS_COUNT_THE_MODELS = Mutant(
    "attempts_count_the_models",
    "attempts counts the models tried (1, or 2 after a fallback), not the calls: retries are "
    "left out.",
    (
        Edit(
            "fallback.py",
            "return value, Served(model, model != settings.primary_model, attempts)",
            "return value, Served(model, model != settings.primary_model, models.index(model) + 1)",
        ),
    ),
    breaks=("metadata.attempts",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "metadata_covers_every_attempt",
        }
    ),
    from_brief=True,
)

USAGE_READ_WITH_ANTHROPIC_NAMES = Mutant(
    "usage_read_with_anthropic_names",
    "The provider's usage is read with Anthropic's names (input_tokens, output_tokens), which an "
    "OpenAI-format provider never sends: every answer reports zero tokens.",
    (
        Edit(
            "llm.py",
            'return cls(_count(data.get("prompt_tokens")), _count(data.get("completion_tokens")))',
            'return cls(_count(data.get("input_tokens")), _count(data.get("output_tokens")))',
        ),
    ),
    breaks=("metadata.usage",),
    expected_failures=frozenset(
        {
            "a_batch_result_carries_the_metadata",
            "a_fallback_answer_counts_every_attempt",
            "an_answer_carries_typed_metadata",
            "metadata_covers_every_attempt",
            "the_done_event_carries_the_metadata",
        }
    ),
    from_brief=True,
)

STREAM_USAGE_READ_FROM_CHOICES = Mutant(
    "stream_usage_read_from_choices",
    "The stream reads usage while going through a chunk's choices, so the last chunk (usage, no "
    "choices) is never read: the done event reports zero tokens though include_usage was asked.",
    (
        Edit(
            "llm.py",
            "                if chunk.get(\"usage\"):  # on the last chunk (null before), with "
            "include_usage\n"
            "                    usage = Usage.from_json(chunk[\"usage\"])\n"
            "                for choice in chunk.get(\"choices\") or ():\n"
            "                    if text := (choice.get(\"delta\") or {}).get(\"content\"):\n"
            "                        yield text\n",
            "                for choice in chunk.get(\"choices\") or ():\n"
            "                    if text := (choice.get(\"delta\") or {}).get(\"content\"):\n"
            "                        yield text\n"
            "                    if chunk.get(\"usage\"):\n"
            "                        usage = Usage.from_json(chunk[\"usage\"])\n",
        ),
    ),
    breaks=("metadata.usage",),
    expected_failures=frozenset({"the_done_event_carries_the_metadata"}),
    from_brief=True,
)

USAGE_IS_A_RUNNING_TOTAL = Mutant(
    "usage_is_a_running_total",
    "usage is the app's running total of tokens (what it has cost so far), so each answer of "
    "POST /api/answer reports the tokens of every answer before it too.",
    (
        Edit(
            "answers.py",
            "        self._shared: SharedCalls[Answer] = SharedCalls()\n",
            "        self._shared: SharedCalls[Answer] = SharedCalls()\n"
            "        self._spent = Usage()  # what the answers have cost so far\n",
        ),
        Edit(
            "answers.py",
            "        metadata = Metadata(served, completion.usage, time.monotonic() - started)\n",
            "        self._spent = Usage(\n"
            "            self._spent.prompt_tokens + completion.usage.prompt_tokens,\n"
            "            self._spent.completion_tokens + completion.usage.completion_tokens,\n"
            "        )\n"
            "        metadata = Metadata(served, self._spent, time.monotonic() - started)\n",
        ),
    ),
    breaks=("metadata.usage",),
    expected_failures=frozenset({"a_batch_result_carries_the_metadata"}),
    from_brief=True,
)

JOINER_LATENCY_FROM_THE_FIRST_QUESTION = Mutant(
    "joiner_latency_from_the_first_question",
    "A request that joins a call already under way reports the call's latency, counted from the "
    "first asker's question rather than its own.",
    (
        Edit(
            "answers.py",
            "        started = time.monotonic()\n"
            "        answer = await self._shared.run(question, lambda: self._answer(question))\n"
            "        metadata = dataclasses.replace(answer.metadata, "
            "latency=time.monotonic() - started)\n"
            "        return dataclasses.replace(answer, metadata=metadata)\n",
            "        return await self._shared.run(question, lambda: self._answer(question))\n",
        ),
    ),
    breaks=("metadata.latency",),
    expected_failures=frozenset({"a_tab_joining_a_shared_answer_reports_its_own_latency"}),
    from_brief=True,
)

STREAM_LATENCY_TO_THE_FIRST_PIECE = Mutant(
    "stream_latency_to_the_first_piece",
    "The stream's latency_ms is its time to the first piece of the answer, not to the whole "
    "answer.",
    (
        Edit(
            "answers.py",
            "        usage = Usage()\n        async with contextlib.aclosing(pieces):\n",
            "        latency = time.monotonic() - started  # until the user sees something\n"
            "        usage = Usage()\n        async with contextlib.aclosing(pieces):\n",
        ),
        Edit(
            "answers.py",
            "        yield Metadata(served, usage, time.monotonic() - started)\n",
            "        yield Metadata(served, usage, latency)\n",
        ),
    ),
    breaks=("metadata.latency",),
    expected_failures=frozenset({"the_done_event_carries_the_metadata"}),
    from_brief=True,
)

ANSWER_REQUEST_ID_MADE_AGAIN = Mutant(
    "answer_request_id_made_again",
    "POST /api/answer makes the body's request_id itself, a new one when the client sent none, "
    "so it differs from the X-Request-ID header the middleware made.",
    (
        Edit("app.py", "import typing\n", "import typing\nimport uuid\n"),
        Edit(
            "app.py",
            '    return JSONResponse({**result.to_json(), "request_id": '
            "request.state.request_id})\n",
            '    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex\n'
            '    return JSONResponse({**result.to_json(), "request_id": request_id})\n',
        ),
    ),
    breaks=("metadata.request_id",),
    expected_failures=frozenset({"every_answer_has_a_request_id"}),
    from_brief=True,
)

BATCH_ITEMS_GET_THEIR_OWN_REQUEST_ID = Mutant(
    "batch_items_get_their_own_request_id",
    "Each batch answer gets a request id of its own instead of the id of the POST /api/batch "
    "that asked it.",
    (
        Edit(
            "jobs.py",
            'item.result = {**answer.to_json(), "request_id": request_id}',
            'item.result = {**answer.to_json(), "request_id": uuid.uuid4().hex}',
        ),
    ),
    breaks=("metadata.request_id",),
    expected_failures=frozenset({"a_batch_result_carries_the_metadata"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

REQUEST_ID_MUST_BE_A_UUID = Mutant(
    "request_id_must_be_a_uuid",
    "A client's X-Request-ID is kept only when it is a UUID: any other id (a proxy's, "
    '"req-42") is replaced by a new one.',
    (
        Edit(
            "request_id.py",
            r'_SENSIBLE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces, not '
            "too long\n",
            r'_SENSIBLE = re.compile(r"[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}", re.I)'
            "  # a UUID\n",
        ),
    ),
    breaks=("metadata.request_id",),
    expected_failures=frozenset(
        {
            "error_replies_carry_the_request_id",
            "every_answer_has_a_request_id",
            "every_response_carries_the_request_id",
        }
    ),
    from_brief=True,
)

PAGE_READS_LATENCY_BY_A_WRONG_NAME = Mutant(
    "page_reads_latency_by_a_wrong_name",
    "The page reads the answer's latency as `data.latency`, a field the done event does not "
    "have: it shows NaN seconds.",
    (
        Edit(
            "static/index.html",
            "const seconds = (data.latency_ms / 1000).toFixed(1);",
            "const seconds = (data.latency / 1000).toFixed(1);",
        ),
    ),
    breaks=("metadata.page",),
    expected_failures=frozenset({"the_page_shows_the_model_and_latency"}),
    from_brief=True,
)

PAGE_SHOWS_NO_MODEL = Mutant(
    "page_shows_no_model",
    "The page says whether the fallback answered and how long it took, but not which model "
    "wrote the answer.",
    (
        Edit(
            "static/index.html",
            'meta.textContent = `Answered by ${data.model}` + (data.fallback ? " (fallback model)" '
            ': "") + ` in ${seconds} s`;',
            'meta.textContent = (data.fallback ? "Answered by the fallback model" : "Answered") '
            "+ ` in ${seconds} s`;",
        ),
    ),
    breaks=("metadata.page",),
    expected_failures=frozenset({"the_page_shows_the_model_and_latency"}),
    from_brief=True,
)

MUTANTS: list[Mutant] = [
    USAGE_COUNTED_BY_THE_APP,
    STREAM_WITHOUT_USAGE,
    LATENCY_OF_THE_LAST_CALL,
    LATENCY_IN_SECONDS,
    ATTEMPTS_COUNT_RETRIES,
    REQUEST_ID_IGNORES_THE_CLIENT,
    REQUEST_ID_ONLY_ON_ANSWERS,
    LATENCY_MS_AS_A_FLOAT,
    USAGE_AS_TOTAL_TOKENS,
    FALLBACK_NAMES_THE_MODEL,
    DONE_EVENT_WITHOUT_REQUEST_ID,
    BATCH_RESULT_WITHOUT_REQUEST_ID,
    ATTEMPTS_COUNTED_PER_MODEL,
    ATTEMPTS_COUNT_THE_MODELS,
    USAGE_READ_WITH_ANTHROPIC_NAMES,
    STREAM_USAGE_READ_FROM_CHOICES,
    USAGE_IS_A_RUNNING_TOTAL,
    JOINER_LATENCY_FROM_THE_FIRST_QUESTION,
    STREAM_LATENCY_TO_THE_FIRST_PIECE,
    ANSWER_REQUEST_ID_MADE_AGAIN,
    BATCH_ITEMS_GET_THEIR_OWN_REQUEST_ID,
    REQUEST_ID_MUST_BE_A_UUID,
    PAGE_READS_LATENCY_BY_A_WRONG_NAME,
    PAGE_SHOWS_NO_MODEL,
]

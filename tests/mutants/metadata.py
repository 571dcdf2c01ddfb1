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
        {"an_answer_carries_typed_metadata", "metadata_covers_every_attempt"}
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
    ),
    breaks=("metadata.latency",),
    expected_failures=frozenset({"metadata_covers_every_attempt"}),
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
        {"every_answer_has_a_request_id", "error_replies_carry_the_request_id"}
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
    expected_failures=frozenset({"error_replies_carry_the_request_id"}),
)

MUTANTS: list[Mutant] = [
    USAGE_COUNTED_BY_THE_APP,
    STREAM_WITHOUT_USAGE,
    LATENCY_OF_THE_LAST_CALL,
    LATENCY_IN_SECONDS,
    ATTEMPTS_COUNT_RETRIES,
    REQUEST_ID_IGNORES_THE_CLIENT,
    REQUEST_ID_ONLY_ON_ANSWERS,
]

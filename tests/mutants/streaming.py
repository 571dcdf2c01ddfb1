"""Mutants of the streaming task."""

from __future__ import annotations

from .edits import Edit, Mutant


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
    breaks=("streaming.live",),
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
    breaks=("streaming.error",),
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
    breaks=("streaming.text",),
    expected_failures=frozenset(
        {
            "stream_is_token_events_then_done",
        }
    ),
)


MUTANTS: list[Mutant] = [
    BUFFER_THEN_STREAM,
    NO_ERROR_EVENT,
    STRIPS_TOKENS,
]

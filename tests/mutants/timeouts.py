"""Mutants of the timeouts task: a slow model is cut off at the request's deadline."""

from __future__ import annotations

from .edits import Edit, Mutant

# The whole deadline, as Deadline.enforced() applies it; the mutants that drop it put this back
# with nothing but its `yield`.
_ENFORCED = """\
        try:
            with anyio.fail_after(self.remaining()):
                yield
        except TimeoutError:
            raise DeadlineExceeded("The model took too long to answer.") from None
"""

READ_TIMEOUT_ONLY = Mutant(
    "read_timeout_only",
    "No deadline around the model's calls: httpx's read timeout is trusted to end a slow answer "
    "(retries still check the time left).",
    (Edit("deadline.py", _ENFORCED, "        yield\n"),),
    breaks=("timeouts.answer", "timeouts.stream",),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "the_deadline_counts_every_attempt",
        }
    ),
)

STREAM_PIECES_UNTIMED = Mutant(
    "stream_pieces_untimed",
    "The deadline covers the attempts up to a stream's first piece; after it, the pieces come "
    "as slowly as the model sends them.",
    (
        Edit(
            "answers.py",
            """\
    with deadline.enforced():  # every piece, since a slow drip never trips httpx's read timeout
        try:
            return await anext(pieces, None)
        except Exception as error:
            if is_transient(error):
                raise AnswerInterrupted("The answer broke off.") from error
            raise
""",
            """\
    try:  # each piece is bounded by the read timeout
        return await anext(pieces, None)
    except Exception as error:
        if is_transient(error):
            raise AnswerInterrupted("The answer broke off.") from error
        raise
""",
        ),
    ),
    breaks=("timeouts.stream",),
    expected_failures=frozenset(
        {
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
        }
    ),
)

DEADLINE_IS_A_500 = Mutant(
    "deadline_is_a_500",
    "A request cut off at the deadline is answered 500, as if the app had failed, not 504.",
    (
        Edit(
            "errors.py",
            'status_code, code, retryable = 504, "deadline_exceeded", True',
            'status_code, code, retryable = 500, "deadline_exceeded", True',
        ),
    ),
    breaks=("timeouts.answer",),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
        }
    ),
)

DEADLINE_LEAVES_CALL_RUNNING = Mutant(
    "deadline_leaves_call_running",
    "The deadline is an asyncio.wait(timeout=...) around the answer, which cancels the call "
    "when the user leaves but not when time is up: a 504 in time, the call running on (and the "
    "stream has no deadline).",
    (
        Edit("deadline.py", _ENFORCED, "        yield\n"),
        Edit("answers.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "answers.py",
            "from .errors import AnswerInterrupted\n",
            "from .errors import AnswerInterrupted, DeadlineExceeded\n",
        ),
        Edit(
            "answers.py",
            "        answer = await self._shared.run(question, lambda: self._answer(question))\n",
            """\
        shared = asyncio.ensure_future(self._shared.run(question, lambda: self._answer(question)))
        try:
            done, _ = await asyncio.wait({shared}, timeout=self._settings.request_deadline)
        except asyncio.CancelledError:  # the user left: stop the call
            shared.cancel()
            raise
        if not done:
            raise DeadlineExceeded("The model took too long to answer.")
        answer = shared.result()
""",
        ),
    ),
    breaks=("timeouts.closed",),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "the_deadline_counts_every_attempt",
        }
    ),
)

STREAM_DEADLINE_ENDS_SILENTLY = Mutant(
    "stream_deadline_ends_silently",
    "A stream cut off at the deadline just ends, without an `error` event: the user cannot tell "
    "it from a short answer.",
    (
        Edit(
            "streaming.py",
            "from .errors import AnswerError\n",
            "from .errors import AnswerError, DeadlineExceeded\n",
        ),
        Edit(
            "streaming.py",
            "        except AnswerError as error:\n",
            "        except DeadlineExceeded:\n"
            "            return  # out of time: the user keeps what was sent\n"
            "        except AnswerError as error:\n",
        ),
    ),
    breaks=("timeouts.stream",),
    expected_failures=frozenset(
        {
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
        }
    ),
)

DEADLINE_PER_MODEL = Mutant(
    "deadline_per_model",
    "Each model gets a REQUEST_DEADLINE of its own, so a request that falls back may take "
    "nearly twice as long.",
    (
        Edit(
            "fallback.py",
            "    with deadline.enforced():\n        for model in models:\n",
            "    for model in models:\n"
            "        with Deadline.after(settings.request_deadline).enforced():\n",
        ),
    ),
    breaks=("timeouts.whole_request",),
    expected_failures=frozenset(
        {
            "the_deadline_counts_every_attempt",
        }
    ),
)

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
    breaks=("retries.deadline", "timeouts.answer", "timeouts.stream",),
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


MUTANTS: list[Mutant] = [
    IGNORES_DEADLINE,
    READ_TIMEOUT_ONLY,
    STREAM_PIECES_UNTIMED,
    DEADLINE_IS_A_500,
    DEADLINE_LEAVES_CALL_RUNNING,
    STREAM_DEADLINE_ENDS_SILENTLY,
    DEADLINE_PER_MODEL,
]

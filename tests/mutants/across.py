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
    expected_failures=frozenset(
        {
            "streams_run_side_by_side",
        }
    ),
)


MUTANTS: list[Mutant] = [
    SWALLOWS_ERRORS,
    SERIALISES_STREAMS,
]

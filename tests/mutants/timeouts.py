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
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_card_s_repair_shares_the_deadline",
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
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_card_s_repair_shares_the_deadline",
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
            "a_card_s_repair_shares_the_deadline",
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
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_card_s_repair_shares_the_deadline",
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


# -- written from the brief (issue 12) ------------------------------------------------------------

_ANSWER_ERRORS = """\
        result = await cancel_on_disconnect(request, lambda: answers.answer(question))
    except AnswerError as error:
"""

ANSWER_DEADLINE_WITHOUT_ERROR_BODY = Mutant(
    "answer_deadline_without_error_body",
    "POST /api/answer cut off at the deadline answers a bare 504 with no JSON error body: the "
    "page has no message to show.",
    (
        Edit(
            "app.py",
            "from .errors import AnswerError, BadQuestion\n",
            "from .errors import AnswerError, BadQuestion, DeadlineExceeded\n",
        ),
        Edit(
            "app.py",
            _ANSWER_ERRORS,
            """\
        result = await cancel_on_disconnect(request, lambda: answers.answer(question))
    except DeadlineExceeded:
        return Response(status_code=504)  # Gateway Timeout says it all
    except AnswerError as error:
""",
        ),
    ),
    breaks=("timeouts.answer", "errors.shape"),
    expected_failures=frozenset(
        {
            "a_model_that_never_answers_is_cut_off_with_a_504",
            "a_slow_drip_is_cut_off_at_the_deadline",
            "the_deadline_counts_every_attempt",
        }
    ),
    from_brief=True,
)

DEADLINE_SPARES_THE_FALLBACK = Mutant(
    "deadline_spares_the_fallback",
    "Only the primary model's attempts are under the deadline; the fallback, the last resort, "
    "may take as long as it likes: a dripping fallback keeps the user waiting past it.",
    (
        Edit("fallback.py", "import functools\n", "import contextlib\nimport functools\n"),
        Edit(
            "fallback.py",
            "    with deadline.enforced():\n        for model in models:\n",
            "    for model in models:\n"
            "        # The fallback is the last resort: let it finish.\n"
            "        primary = model == settings.primary_model\n"
            "        with deadline.enforced() if primary else contextlib.nullcontext():\n",
        ),
    ),
    breaks=("timeouts.whole_request", "timeouts.answer", "timeouts.stream"),
    expected_failures=frozenset({"the_deadline_counts_every_attempt"}),
    from_brief=True,
)

STREAM_DEADLINE_RESTARTS_EACH_PIECE = Mutant(
    "stream_deadline_restarts_each_piece",
    "Once a stream has started, the deadline is counted afresh for every piece: a model that "
    "keeps writing (endless, or a steady drip) is never cut off.",
    (
        Edit(
            "answers.py",
            "                piece = await _next_piece(pieces, deadline)\n",
            "                # a deadline for each piece: the answer is coming\n"
            "                piece = await _next_piece(\n"
            "                    pieces, Deadline.after(self._settings.request_deadline)\n"
            "                )\n",
        ),
    ),
    breaks=("timeouts.stream",),
    expected_failures=frozenset(
        {
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
        }
    ),
    from_brief=True,
)

STREAM_DEADLINE_FROM_FIRST_PIECE = Mutant(
    "stream_deadline_from_first_piece",
    "A stream's deadline starts again when its first piece arrives, so the wait for that piece "
    "(retries and fallback included) comes on top: an endless stream runs well past it.",
    (
        Edit(
            "answers.py",
            "        usage = Usage()\n        async with contextlib.aclosing(pieces):\n",
            "        usage = Usage()\n"
            "        # The answer has started: give it the whole deadline to finish.\n"
            "        deadline = Deadline.after(self._settings.request_deadline)\n"
            "        async with contextlib.aclosing(pieces):\n",
        ),
    ),
    breaks=("timeouts.stream", "timeouts.whole_request"),
    expected_failures=frozenset({"an_endless_stream_is_cut_off_at_the_deadline"}),
    from_brief=True,
)

STREAM_DEADLINE_CHECKED_BETWEEN_PIECES = Mutant(
    "stream_deadline_checked_between_pieces",
    "The stream looks at the clock only when a piece arrives: a model that stalls midway is not "
    "cut off at the deadline but when the read timeout trips, if ever.",
    (
        Edit(
            "answers.py",
            "from .errors import AnswerInterrupted\n",
            "from .errors import AnswerInterrupted, DeadlineExceeded\n",
        ),
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
    if deadline.remaining() <= 0:  # checked at every piece: a slow drip ends here
        raise DeadlineExceeded("The model took too long to answer.")
    try:
        return await anext(pieces, None)
    except Exception as error:
        if is_transient(error):
            raise AnswerInterrupted("The answer broke off.") from error
        raise
""",
        ),
    ),
    breaks=("timeouts.stream",),
    expected_failures=frozenset({"a_stream_that_stalls_midway_is_cut_off_at_the_deadline"}),
    from_brief=True,
)

STREAM_DEADLINE_LEAVES_READ_PENDING = Mutant(
    "stream_deadline_leaves_read_pending",
    "A stream's pieces are awaited with asyncio.wait(timeout=...): at the deadline the user gets "
    "the `error` event, but the read still pending keeps the call to the model open.",
    (
        Edit("answers.py", "import contextlib\n", "import asyncio\n"),
        Edit(
            "answers.py",
            "from .errors import AnswerInterrupted\n",
            "from .errors import AnswerInterrupted, DeadlineExceeded\n",
        ),
        Edit(
            "answers.py",
            """\
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
        piece = first
        while piece is not None:
            if isinstance(piece, Usage):
                usage = piece
            else:
                yield piece
            piece = await _next_piece(pieces, deadline)
""",
        ),
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
    next_piece = asyncio.ensure_future(anext(pieces, None))
    try:
        done, _ = await asyncio.wait({next_piece}, timeout=deadline.remaining())
    except asyncio.CancelledError:  # the user left: stop the call
        next_piece.cancel()
        raise
    if not done:
        raise DeadlineExceeded("The model took too long to answer.")
    try:
        return next_piece.result()
    except Exception as error:
        if is_transient(error):
            raise AnswerInterrupted("The answer broke off.") from error
        raise
""",
        ),
    ),
    breaks=("timeouts.closed",),
    expected_failures=frozenset({"a_stream_that_stalls_midway_is_cut_off_at_the_deadline"}),
    from_brief=True,
)

DEADLINE_SPLIT_BETWEEN_ATTEMPTS = Mutant(
    "deadline_split_between_attempts",
    "Each attempt gets REQUEST_DEADLINE / MAX_ATTEMPTS, so that every attempt fits: a model that "
    "takes longer than its share is cut off and retried though the request had time for it.",
    (
        Edit(
            "retry.py",
            "        try:\n            return await attempt()\n",
            "        try:\n            return await _in_its_share(attempt, settings)\n",
        ),
        Edit(
            "retry.py",
            "    return await attempt()  # the last one: its failure is final\n",
            "    return await _in_its_share(attempt, settings)"
            "  # the last one: its failure is final\n"
            "\n"
            "\n"
            "async def _in_its_share(\n"
            "    attempt: typing.Callable[[], typing.Awaitable[T]], settings: Settings\n"
            ") -> T:\n"
            '    """One attempt, within its share of the deadline, so that every attempt fits in '
            'it."""\n'
            "    try:\n"
            "        with anyio.fail_after(settings.request_deadline / settings.max_attempts):\n"
            "            return await attempt()\n"
            "    except TimeoutError:\n"
            '        raise httpx.ReadTimeout("the attempt took more than its share") from None\n',
        ),
    ),
    breaks=("timeouts.not_early",),
    expected_failures=frozenset(
        {
            "a_card_s_repair_shares_the_deadline",
            "a_model_that_never_answers_is_cut_off_with_a_504",
        }
    ),
    from_brief=True,
)

STREAM_GIVES_UP_A_READ_TIMEOUT_EARLY = Mutant(
    "stream_gives_up_a_read_timeout_early",
    "A stream stops waiting for pieces once less than LLM_READ_TIMEOUT is left (the next piece "
    "might come too late): a steady stream is cut off that much before the deadline.",
    (
        Edit(
            "answers.py",
            "from .errors import AnswerInterrupted\n",
            "from .errors import AnswerInterrupted, DeadlineExceeded\n",
        ),
        Edit(
            "answers.py",
            "                piece = await _next_piece(pieces, deadline)\n",
            "                piece = await _next_piece("
            "pieces, deadline, self._settings.read_timeout)\n",
        ),
        Edit(
            "answers.py",
            """\
async def _next_piece(pieces: Pieces, deadline: Deadline) -> str | Usage | None:
""",
            """\
async def _next_piece(
    pieces: Pieces, deadline: Deadline, read_timeout: float
) -> str | Usage | None:
    if deadline.remaining() < read_timeout:  # the next piece may come after the deadline
        raise DeadlineExceeded("The model took too long to answer.")
""",
        ),
    ),
    breaks=("timeouts.not_early",),
    expected_failures=frozenset(
        {
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
        }
    ),
    from_brief=True,
)

_ITEM_ANSWERED = """\
        try:
            async with self._slots:
                item.state = "active"
                answer = await self._answers.answer(item.question)
                item.result = {**answer.to_json(), "request_id": request_id}
"""

BATCH_DEADLINE_COUNTS_THE_QUEUE = Mutant(
    "batch_deadline_counts_the_queue",
    "Each batch item's deadline starts when the batch is posted, not when its turn comes: items "
    "queued behind slow ones fail with a 504 error though their own call was quick.",
    (
        Edit(
            "jobs.py",
            "from .answers import AnswerService\n",
            "from .answers import AnswerService\nfrom .deadline import Deadline\n",
        ),
        Edit(
            "jobs.py",
            "        self._answers = answers\n",
            "        self._answers = answers\n        self._deadline = settings.request_deadline\n",
        ),
        Edit(
            "jobs.py",
            _ITEM_ANSWERED,
            """\
        try:
            with Deadline.after(self._deadline).enforced():  # each question has its own
                async with self._slots:
                    item.state = "active"
                    answer = await self._answers.answer(item.question)
                    item.result = {**answer.to_json(), "request_id": request_id}
""",
        ),
    ),
    breaks=("timeouts.batch_item",),
    expected_failures=frozenset({"a_batch_question_that_hangs_fails_at_its_deadline"}),
    reaches=("jobs", "timeouts"),
    from_brief=True,
)

ONE_DEADLINE_FOR_THE_WHOLE_BATCH = Mutant(
    "one_deadline_for_the_whole_batch",
    "The batch is one request with one REQUEST_DEADLINE: when it is up, every item not yet "
    "answered is cancelled, not failed, and the later ones never get their turn.",
    (
        Edit(
            "jobs.py",
            "from .answers import AnswerService\n",
            "from .answers import AnswerService\nfrom .deadline import Deadline\n",
        ),
        Edit(
            "jobs.py",
            "        self._answers = answers\n",
            "        self._answers = answers\n        self._deadline = settings.request_deadline\n",
        ),
        Edit(
            "jobs.py",
            """\
        async with asyncio.TaskGroup() as group:
            for item in job.items:
                group.create_task(self._answer(item, request_id))
""",
            """\
        with Deadline.after(self._deadline).enforced():  # the batch's REQUEST_DEADLINE
            async with asyncio.TaskGroup() as group:
                for item in job.items:
                    group.create_task(self._answer(item, request_id))
""",
        ),
    ),
    breaks=("timeouts.batch_item",),
    expected_failures=frozenset({"a_batch_question_that_hangs_fails_at_its_deadline"}),
    reaches=("jobs", "timeouts"),
    from_brief=True,
)

_EXTRACT_LOOP = """\
        deadline = Deadline.after(self._settings.request_deadline)
        problem = ""
        for _ in range(1 + REPAIRS):
            answer = await self._ask(messages, deadline)
"""

REPAIR_GETS_A_FRESH_DEADLINE = Mutant(
    "repair_gets_a_fresh_deadline",
    "Each call of POST /api/extract gets a REQUEST_DEADLINE of its own: with its repair, the "
    "request may take nearly twice as long.",
    (
        Edit(
            "extract.py",
            _EXTRACT_LOOP,
            """\
        problem = ""
        for _ in range(1 + REPAIRS):
            deadline = Deadline.after(self._settings.request_deadline)  # for this call
            answer = await self._ask(messages, deadline)
""",
        ),
    ),
    breaks=("timeouts.extract", "timeouts.whole_request"),
    expected_failures=frozenset({"a_card_s_repair_shares_the_deadline"}),
    reaches=("structured", "timeouts"),
    from_brief=True,
)

EXTRACT_DEADLINE_SPLIT_WITH_REPAIR = Mutant(
    "extract_deadline_split_with_repair",
    "POST /api/extract gives its call and its repair half of REQUEST_DEADLINE each: a slow but "
    "valid first answer is cut off at half the deadline.",
    (
        Edit(
            "extract.py",
            _EXTRACT_LOOP,
            """\
        problem = ""
        for _ in range(1 + REPAIRS):
            # The call and its repair share the request's deadline, half each.
            deadline = Deadline.after(self._settings.request_deadline / (1 + REPAIRS))
            answer = await self._ask(messages, deadline)
""",
        ),
    ),
    breaks=("timeouts.extract", "timeouts.not_early"),
    expected_failures=frozenset({"a_card_s_repair_shares_the_deadline"}),
    reaches=("structured", "timeouts"),
    from_brief=True,
)

EXTRACT_DEADLINE_LEAVES_REPAIR_RUNNING = Mutant(
    "extract_deadline_leaves_repair_running",
    "POST /api/extract is bounded by asyncio.wait(timeout=REQUEST_DEADLINE) while each call has "
    "its own deadline: the 504 comes in time, but the repair call runs on after it.",
    (
        Edit("extract.py", "import json\n", "import asyncio\nimport json\n"),
        Edit(
            "extract.py",
            "from .errors import AnswerError, BadQuestion, InvalidModelOutput\n",
            "from .errors import AnswerError, BadQuestion, DeadlineExceeded, InvalidModelOutput\n",
        ),
        Edit(
            "extract.py",
            "        self._settings = settings\n",
            "        self._settings = settings\n"
            "        self.request_deadline = settings.request_deadline\n",
        ),
        Edit(
            "extract.py",
            _EXTRACT_LOOP,
            """\
        problem = ""
        for _ in range(1 + REPAIRS):
            deadline = Deadline.after(self._settings.request_deadline)  # for this call
            answer = await self._ask(messages, deadline)
""",
        ),
        Edit(
            "extract.py",
            "        card = await extractor.extract(paper)\n",
            """\
        # One deadline for the whole request, its repair included.
        extraction = asyncio.ensure_future(extractor.extract(paper))
        done, _ = await asyncio.wait({extraction}, timeout=extractor.request_deadline)
        if not done:
            raise DeadlineExceeded("The model took too long to answer.")
        card = extraction.result()
""",
        ),
    ),
    breaks=("timeouts.closed",),
    expected_failures=frozenset({"a_card_s_repair_shares_the_deadline"}),
    reaches=("structured", "timeouts"),
    from_brief=True,
)


MUTANTS: list[Mutant] = [
    IGNORES_DEADLINE,
    READ_TIMEOUT_ONLY,
    STREAM_PIECES_UNTIMED,
    DEADLINE_IS_A_500,
    DEADLINE_LEAVES_CALL_RUNNING,
    STREAM_DEADLINE_ENDS_SILENTLY,
    DEADLINE_PER_MODEL,
    ANSWER_DEADLINE_WITHOUT_ERROR_BODY,
    DEADLINE_SPARES_THE_FALLBACK,
    STREAM_DEADLINE_RESTARTS_EACH_PIECE,
    STREAM_DEADLINE_FROM_FIRST_PIECE,
    STREAM_DEADLINE_CHECKED_BETWEEN_PIECES,
    STREAM_DEADLINE_LEAVES_READ_PENDING,
    DEADLINE_SPLIT_BETWEEN_ATTEMPTS,
    STREAM_GIVES_UP_A_READ_TIMEOUT_EARLY,
    BATCH_DEADLINE_COUNTS_THE_QUEUE,
    ONE_DEADLINE_FOR_THE_WHOLE_BATCH,
    REPAIR_GETS_A_FRESH_DEADLINE,
    EXTRACT_DEADLINE_SPLIT_WITH_REPAIR,
    EXTRACT_DEADLINE_LEAVES_REPAIR_RUNNING,
]

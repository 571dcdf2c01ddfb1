"""Mutants of the jobs task: batches answered in the background, under one cap, cancellable."""

from __future__ import annotations

from .edits import Edit, Mutant

# Every edit here is in jobs.py, which only the batch and job endpoints use.
ONLY_JOBS = ("jobs",)

ONE_CALL_AT_A_TIME = Mutant(
    "batch_one_call_at_a_time",
    "A lock around the model call (to protect the shared HTTP client) answers a batch one "
    "question at a time.",
    (
        Edit(
            "jobs.py",
            "        self._slots = asyncio.Semaphore(settings.max_concurrency)\n",
            "        self._slots = asyncio.Lock()  # one call at a time on the shared client\n",
        ),
    ),
    breaks=("jobs.parallel",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_failed_question_gives_its_turn_back",
            "other_questions_do_not_wait_for_a_batch",
        }
    ),
    reaches=ONLY_JOBS,
)

NO_CAP = Mutant(
    "batch_without_a_cap",
    "Every question of a batch goes to the model at once: MAX_CONCURRENCY is never applied.",
    (
        Edit(
            "jobs.py",
            "            async with self._slots:\n"
            '                item.state = "active"\n'
            "                answer = await self._answers.answer(item.question)\n"
            '                item.result = {**answer.to_json(), "request_id": request_id}\n',
            '            item.state = "active"\n'
            "            answer = await self._answers.answer(item.question)\n"
            '            item.result = {**answer.to_json(), "request_id": request_id}\n',
        ),
    ),
    breaks=("jobs.cap",),
    expected_failures=frozenset(
        {
            "a_batch_runs_in_parallel_under_the_cap",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
)

CAP_PER_JOB = Mutant(
    "cap_per_job",
    "Each job has a semaphore of its own: two batches together make twice MAX_CONCURRENCY calls.",
    (
        Edit(
            "jobs.py",
            "        self._slots = asyncio.Semaphore(settings.max_concurrency)\n",
            "        self._max_concurrency = settings.max_concurrency\n",
        ),
        Edit(
            "jobs.py",
            "        async with asyncio.TaskGroup() as group:\n"
            "            for item in job.items:\n"
            "                group.create_task(self._answer(item, request_id))\n",
            "        slots = asyncio.Semaphore(self._max_concurrency)\n"
            "        async with asyncio.TaskGroup() as group:\n"
            "            for item in job.items:\n"
            "                group.create_task(self._answer(item, request_id, slots))\n",
        ),
        Edit(
            "jobs.py",
            "    async def _answer(self, item: Item, request_id: str) -> None:\n",
            "    async def _answer(\n"
            "        self, item: Item, request_id: str, slots: asyncio.Semaphore\n"
            "    ) -> None:\n",
        ),
        Edit("jobs.py", "            async with self._slots:\n", "            async with slots:\n"),
    ),
    breaks=("jobs.cap",),
    expected_failures=frozenset({"two_batches_share_the_cap"}),
    reaches=ONLY_JOBS,
)

CANCEL_ONLY_MARKS = Mutant(
    "cancel_only_marks_items",
    "DELETE marks the unfinished items cancelled but leaves their tasks, and calls, running.",
    (
        Edit(
            "jobs.py",
            "        if not job.task.done():\n"
            "            job.task.cancel()\n"
            "            await asyncio.wait([job.task])\n",
            "        for item in job.items:\n"
            '            if item.state in ("pending", "active"):\n'
            '                item.state = "cancelled"\n',
        ),
    ),
    breaks=("jobs.cancel",),
    expected_failures=frozenset({"cancelling_a_job_stops_what_is_left"}),
    reaches=ONLY_JOBS,
)

ONE_FAILURE_CANCELS_THE_BATCH = Mutant(
    "one_failure_cancels_the_batch",
    "An item's failure is recorded, then re-raised: the TaskGroup cancels the rest of the batch.",
    (
        Edit(
            "jobs.py",
            '            item.state, item.error = "failed", error.to_json()\n',
            '            item.state, item.error = "failed", error.to_json()\n'
            "            raise  # so that the job knows\n",
        ),
    ),
    breaks=("jobs.failure",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "one_failure_does_not_fail_the_batch",
        }
    ),
    reaches=ONLY_JOBS,
)

FAILURE_AS_TEXT = Mutant(
    "failure_as_text",
    "A failed item's error is the exception's text, not the app's JSON error shape.",
    (
        Edit(
            "jobs.py",
            '            item.state, item.error = "failed", error.to_json()\n',
            '            item.state, item.error = "failed", str(error)  # type: ignore[assignment]\n',
        ),
    ),
    breaks=("jobs.failure",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_get_the_retries",
            "one_failure_does_not_fail_the_batch",
        }
    ),
    reaches=ONLY_JOBS,
)

POST_WAITS_FOR_THE_ANSWERS = Mutant(
    "post_waits_for_the_answers",
    "POST /api/batch starts the job in the background, then waits for it before answering.",
    (
        Edit(
            "jobs.py",
            "    job = jobs.start(questions, request.state.request_id)\n",
            "    job = jobs.start(questions, request.state.request_id)\n"
            "    await asyncio.wait([job.task])\n",
        ),
    ),
    breaks=("jobs.accepted",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "cancelling_a_job_stops_what_is_left",
            "other_questions_do_not_wait_for_a_batch",
            "progress_shows_what_the_model_is_doing",
        }
    ),
    reaches=ONLY_JOBS,
)

NO_ACTIVE_STATE = Mutant(
    "no_active_state",
    "Items go from pending to completed: the job never shows which questions are with the model.",
    (Edit("jobs.py", '                item.state = "active"\n', ""),),
    breaks=("jobs.states",),
    expected_failures=frozenset({"progress_shows_what_the_model_is_doing"}),
    reaches=ONLY_JOBS,
)

RESULT_WITHOUT_METADATA = Mutant(
    "result_without_metadata",
    "A completed item's result is the answer's text alone, without the model and the rest of "
    "its metadata.",
    (
        Edit(
            "jobs.py",
            '                item.result = {**answer.to_json(), "request_id": request_id}\n',
            '                item.result = {"answer": answer.text}\n',
        ),
    ),
    breaks=("jobs.result",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_s_questions_fall_back",
        }
    ),
    reaches=ONLY_JOBS,
)

UNKNOWN_JOB_CRASHES = Mutant(
    "unknown_job_crashes",
    "An unknown job id raises KeyError: a 500 with a plain-text body instead of a JSON 404.",
    (
        Edit(
            "jobs.py",
            "        job = self._jobs.get(job_id)\n"
            "        if job is None:\n"
            '            raise UnknownJob(f"There is no job {job_id!r}.")\n'
            "        return job\n",
            "        return self._jobs[job_id]\n",
        ),
    ),
    breaks=("jobs.unknown",),
    expected_failures=frozenset({"unknown_jobs_and_wrong_batches_get_clear_errors"}),
    reaches=ONLY_JOBS,
)

# -- written from the brief (issue 12) -----------------------------------------------------------

# Those that also edit the page (static/index.html) have no `reaches`: every task reads the page.

REPLY = "    return JSONResponse(job.to_json(), status_code=202, headers=location)\n"
SLOTS = "        self._slots = asyncio.Semaphore(settings.max_concurrency)\n"
RECORD_FAILURE = '            item.state, item.error = "failed", error.to_json()\n'
RECORD_RESULT = '                item.result = {**answer.to_json(), "request_id": request_id}\n'
JOB_TASK = (
    "    task: asyncio.Task[None] = field(init=False, repr=False)  # answers the items; see Jobs\n"
)
CANCEL_TASK = (
    "        if not job.task.done():\n"
    "            job.task.cancel()\n"
    "            await asyncio.wait([job.task])\n"
)

BATCH_REPLY_JOB_ID_KEY = Mutant(
    "batch_reply_job_id_key",
    'POST /api/batch answers {"job_id": ...}, and the page reads that: the reply has no "id".',
    (
        Edit(
            "jobs.py",
            REPLY,
            '    return JSONResponse({"job_id": job.id}, status_code=202, headers=location)\n',
        ),
        Edit(
            "static/index.html",
            "        job = body.id;\n        show(body);\n        follow(body.id);\n",
            "        job = body.job_id;\n        follow(body.job_id);\n",
        ),
    ),
    breaks=("jobs.accepted",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_question_that_hangs_fails_at_its_deadline",
            "a_batch_result_carries_the_metadata",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "a_failed_question_gives_its_turn_back",
            "cancelling_a_job_spares_a_shared_answer",
            "cancelling_a_job_stops_what_is_left",
            "one_failure_does_not_fail_the_batch",
            "other_questions_do_not_wait_for_a_batch",
            "progress_shows_what_the_model_is_doing",
            "two_batches_share_the_cap",
        }
    ),
    from_brief=True,
)

BATCH_ANSWERED_WHOLE_WHEN_QUICK = Mutant(
    "batch_answered_whole_when_quick",
    "POST /api/batch waits up to a second for its job, to answer a quick batch whole as before: "
    "the reply comes once the model has answered, not at once.",
    (
        Edit(
            "jobs.py",
            "    job = jobs.start(questions, request.state.request_id)\n",
            "    job = jobs.start(questions, request.state.request_id)\n"
            "    # A quick batch is answered whole, as it was; a slow one goes on in the "
            "background.\n"
            "    await asyncio.wait([job.task], timeout=1.0)\n",
        ),
    ),
    breaks=("jobs.accepted",),
    expected_failures=frozenset({"a_batch_is_taken_at_once_and_answered_later"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

BATCH_IN_WAVES = Mutant(
    "batch_in_waves",
    "A batch is asked MAX_CONCURRENCY questions at a time, in waves: the next wave waits for the "
    "slowest answer of the last one, while the other slots stay idle.",
    (
        Edit("jobs.py", SLOTS, SLOTS + "        self._wave = settings.max_concurrency\n"),
        Edit(
            "jobs.py",
            "        # Cancelling the job's task cancels every item still running in the group.\n"
            "        async with asyncio.TaskGroup() as group:\n"
            "            for item in job.items:\n"
            "                group.create_task(self._answer(item, request_id))\n",
            "        # MAX_CONCURRENCY questions at a time: the next wave starts when this one "
            "is done.\n"
            "        try:\n"
            "            for first in range(0, len(job.items), self._wave):\n"
            "                async with asyncio.TaskGroup() as group:\n"
            "                    for item in job.items[first : first + self._wave]:\n"
            "                        group.create_task(self._answer(item, request_id))\n"
            "        finally:\n"
            "            for item in job.items:  # the waves a cancel stopped\n"
            '                if item.state == "pending":\n'
            '                    item.state = "cancelled"\n',
        ),
    ),
    breaks=("jobs.parallel",),
    expected_failures=frozenset({"a_batch_runs_in_parallel_under_the_cap"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

BATCH_CAP_HARD_CODED = Mutant(
    "batch_cap_hard_coded",
    "The batch semaphore holds 8 slots, the provider's limit, instead of MAX_CONCURRENCY: under "
    "the grader's settings a batch has more calls in flight than it allows.",
    (
        Edit(
            "jobs.py",
            SLOTS,
            "        self._slots = asyncio.Semaphore(8)  # the provider takes 8 calls at once\n",
        ),
    ),
    breaks=("jobs.cap", "settings.env"),
    expected_failures=frozenset(
        {
            "a_batch_runs_in_parallel_under_the_cap",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

SLOT_RELEASED_BEFORE_THE_CALL = Mutant(
    "slot_released_before_the_call",
    "The slot is held only while the item is marked active: the model call sits after the "
    "`async with`, so every question of every batch goes to the model at once.",
    (
        Edit(
            "jobs.py",
            "                item.state = \"active\"\n"
            "                answer = await self._answers.answer(item.question)\n"
            + RECORD_RESULT,
            "                item.state = \"active\"\n"
            "            answer = await self._answers.answer(item.question)\n"
            + RECORD_RESULT[4:],
        ),
    ),
    breaks=("jobs.cap",),
    expected_failures=frozenset(
        {
            "a_batch_runs_in_parallel_under_the_cap",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

ITEMS_WITHOUT_THEIR_QUESTION = Mutant(
    "items_without_their_question",
    "A job's items carry their state, result and error but not their question (the page knows "
    "what it asked): GET /api/jobs/{id} cannot say which answer is which.",
    (
        Edit(
            "jobs.py",
            '        data: JSON = {"question": self.question, "state": self.state}\n',
            '        data: JSON = {"state": self.state}  # in the order of the questions sent\n',
        ),
    ),
    breaks=("jobs.items",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "a_failed_question_gives_its_turn_back",
            "cancelling_a_job_spares_a_shared_answer",
            "cancelling_a_job_stops_what_is_left",
            "one_failure_does_not_fail_the_batch",
            "progress_shows_what_the_model_is_doing",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

DEDUPES_WITH_A_SET = Mutant(
    "dedupes_with_a_set",
    "The questions go through a set, so that each is asked once, then are sorted back into an "
    "order: not the order asked, and a question asked twice has one item.",
    (
        Edit(
            "jobs.py",
            "        job = Job([Item(question) for question in questions])\n",
            "        job = Job([Item(question) for question in sorted(set(questions))])\n",
        ),
    ),
    breaks=("jobs.items",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

MERGES_REPEATED_QUESTIONS = Mutant(
    "merges_repeated_questions",
    "Repeated questions are dropped (dict.fromkeys keeps the order): a batch that asks the same "
    "question twice gets fewer items than questions.",
    (
        Edit(
            "jobs.py",
            "        job = Job([Item(question) for question in questions])\n",
            "        job = Job([Item(question) for question in dict.fromkeys(questions)])\n",
        ),
    ),
    breaks=("jobs.items",),
    expected_failures=frozenset({"a_batch_is_taken_at_once_and_answered_later"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

ACTIVE_BEFORE_ITS_TURN = Mutant(
    "active_before_its_turn",
    "An item is marked active before it waits for a slot: every question of the batch shows as "
    "active at once, those waiting for their turn included.",
    (
        Edit(
            "jobs.py",
            "            async with self._slots:\n                item.state = \"active\"\n",
            "            item.state = \"active\"\n            async with self._slots:\n",
        ),
    ),
    breaks=("jobs.states",),
    expected_failures=frozenset({"progress_shows_what_the_model_is_doing"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

STATE_NAMED_RUNNING = Mutant(
    "state_named_running",
    'An item whose call is in flight is "running", the word asyncio uses, not "active".',
    (
        Edit(
            "jobs.py",
            'State = typing.Literal["pending", "active", "completed", "failed", "cancelled"]\n',
            'State = typing.Literal["pending", "running", "completed", "failed", "cancelled"]\n',
        ),
        Edit(
            "jobs.py",
            '        return all(item.state not in ("pending", "active") for item in self.items)\n',
            '        return all(item.state not in ("pending", "running") for item in self.items)\n',
        ),
        Edit(
            "jobs.py",
            '                item.state = "active"\n',
            '                item.state = "running"\n',
        ),
    ),
    breaks=("jobs.states",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "a_failed_question_gives_its_turn_back",
            "cancelling_a_job_stops_what_is_left",
            "one_failure_does_not_fail_the_batch",
            "progress_shows_what_the_model_is_doing",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

RESULT_WITHOUT_REQUEST_ID = Mutant(
    "result_without_request_id",
    "A completed item's result is the answer's own JSON, without the request_id POST /api/answer "
    "adds to its reply (and the batch's request id).",
    (Edit("jobs.py", RECORD_RESULT, "                item.result = answer.to_json()\n"),),
    breaks=("jobs.result", "metadata.request_id"),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_result_carries_the_metadata",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

RESULT_AS_DATACLASS_DICT = Mutant(
    "result_as_dataclass_dict",
    "A completed item's result is dataclasses.asdict(answer): its text under \"text\", the "
    "metadata nested, the latency in seconds, not the JSON POST /api/answer answers.",
    (
        Edit("jobs.py", "import asyncio\n", "import asyncio\nimport dataclasses\n"),
        Edit(
            "jobs.py",
            RECORD_RESULT,
            "                item.result = "
            '{**dataclasses.asdict(answer), "request_id": request_id}\n',
        ),
    ),
    breaks=("jobs.result",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_batch_runs_in_parallel_under_the_cap",
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "a_failed_question_gives_its_turn_back",
            "cancelling_a_job_stops_what_is_left",
            "one_failure_does_not_fail_the_batch",
            "two_batches_share_the_cap",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

FAILED_ITEM_STAYS_ACTIVE = Mutant(
    "failed_item_stays_active",
    "A failed item gets its error but keeps the state it had, active: it never shows as failed, "
    "and the job never ends.",
    (Edit("jobs.py", RECORD_FAILURE, "            item.error = error.to_json()\n"),),
    breaks=("jobs.failure",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_fall_back",
            "a_batch_s_questions_get_the_retries",
            "a_failed_question_gives_its_turn_back",
            "one_failure_does_not_fail_the_batch",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

ITEM_ERROR_WITHOUT_RETRYABLE = Mutant(
    "item_error_without_retryable",
    "A failed item's error is built by hand as {code, message}: it has no retryable.",
    (
        Edit(
            "jobs.py",
            RECORD_FAILURE,
            '            error_json = {"code": error.code, "message": str(error)}\n'
            '            item.state, item.error = "failed", error_json  # type: ignore\n',
        ),
    ),
    breaks=("jobs.failure",),
    expected_failures=frozenset(
        {
            "a_batch_s_questions_get_the_retries",
            "one_failure_does_not_fail_the_batch",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

CANCEL_ANSWERS_204 = Mutant(
    "cancel_answers_204",
    "DELETE /api/jobs/{id} cancels the job and answers 204 No Content, not the job.",
    (
        Edit(
            "jobs.py",
            "from starlette.responses import JSONResponse\n",
            "from starlette.responses import JSONResponse, Response\n",
        ),
        Edit(
            "jobs.py",
            "    await jobs.cancel(job)\n    return JSONResponse(job.to_json())\n",
            "    await jobs.cancel(job)\n    return Response(status_code=204)\n",
        ),
    ),
    breaks=("jobs.cancel",),
    expected_failures=frozenset(
        {
            "cancelling_a_job_spares_a_shared_answer",
            "cancelling_a_job_stops_what_is_left",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

CANCEL_DOES_NOT_WAIT = Mutant(
    "cancel_does_not_wait",
    "DELETE cancels the job's task without waiting for it: the job it answers still shows its "
    "items pending and active.",
    (
        Edit(
            "jobs.py",
            CANCEL_TASK,
            "        if not job.task.done():\n            job.task.cancel()\n",
        ),
    ),
    breaks=("jobs.cancel",),
    expected_failures=frozenset({"cancelling_a_job_stops_what_is_left"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

CANCEL_WIPES_COMPLETED = Mutant(
    "cancel_wipes_completed",
    "DELETE cancels the job, then marks every item cancelled: the questions already answered "
    "show as cancelled too.",
    (
        Edit(
            "jobs.py",
            CANCEL_TASK,
            CANCEL_TASK + '        for item in job.items:\n            item.state = "cancelled"\n',
        ),
    ),
    breaks=("jobs.cancel",),
    expected_failures=frozenset({"cancelling_a_job_stops_what_is_left"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

CANCEL_SPARES_ACTIVE_CALLS = Mutant(
    "cancel_spares_active_calls",
    "DELETE cancels the pending questions but lets those with the model finish (they are paid "
    "for already): the calls in flight are not closed, and their items end completed.",
    (
        Edit(
            "jobs.py",
            JOB_TASK,
            JOB_TASK + "    cancelled: bool = False\n",
        ),
        Edit(
            "jobs.py",
            CANCEL_TASK,
            "        # The calls in flight are paid for already: let them finish, start no more.\n"
            "        job.cancelled = True\n"
            "        for item in job.items:\n"
            '            if item.state == "pending":\n'
            '                item.state = "cancelled"\n',
        ),
        Edit(
            "jobs.py",
            "                group.create_task(self._answer(item, request_id))\n",
            "                group.create_task(self._answer(job, item, request_id))\n",
        ),
        Edit(
            "jobs.py",
            "    async def _answer(self, item: Item, request_id: str) -> None:\n",
            "    async def _answer(self, job: Job, item: Item, request_id: str) -> None:\n",
        ),
        Edit(
            "jobs.py",
            "            async with self._slots:\n",
            "            async with self._slots:\n"
            "                if job.cancelled:\n"
            "                    return\n",
        ),
    ),
    breaks=("jobs.cancel",),
    expected_failures=frozenset({"cancelling_a_job_stops_what_is_left"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

UNKNOWN_JOB_AS_HTTP_EXCEPTION = Mutant(
    "unknown_job_as_http_exception",
    "An unknown job raises Starlette's HTTPException(404): a 404 whose body is plain text, not "
    "the JSON error body.",
    (
        Edit(
            "jobs.py",
            "from starlette.requests import Request\n",
            "from starlette.exceptions import HTTPException\n"
            "from starlette.requests import Request\n",
        ),
        Edit(
            "jobs.py",
            '            raise UnknownJob(f"There is no job {job_id!r}.")\n',
            '            raise HTTPException(404, f"There is no job {job_id!r}.")\n',
        ),
    ),
    breaks=("jobs.unknown", "errors.shape"),
    expected_failures=frozenset({"unknown_jobs_and_wrong_batches_get_clear_errors"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

DELETE_UNKNOWN_JOB_UNHANDLED = Mutant(
    "delete_unknown_job_unhandled",
    "DELETE /api/jobs/{id} does not catch the unknown job's error as GET does: an unknown job is "
    "a 500 with a plain-text body there.",
    (
        Edit(
            "jobs.py",
            "    try:\n"
            '        job = jobs.get(request.path_params["id"])\n'
            "    except AnswerError as error:\n"
            "        return JSONResponse(error.to_json(), status_code=error.status_code)\n"
            "    await jobs.cancel(job)\n",
            '    job = jobs.get(request.path_params["id"])\n'
            "    await jobs.cancel(job)\n",
        ),
    ),
    breaks=("jobs.unknown", "errors.shape"),
    expected_failures=frozenset({"unknown_jobs_and_wrong_batches_get_clear_errors"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

BATCH_BODY_NOT_JSON_CRASHES = Mutant(
    "batch_body_not_json_crashes",
    "POST /api/batch reads its body with request.json() unguarded: a body that is not JSON, or "
    "not an object, is a 500 with a plain-text body, not a 400.",
    (
        Edit(
            "jobs.py",
            "    try:\n"
            "        body = await request.json()\n"
            "    except ValueError:\n"
            "        body = None\n"
            '    questions = body.get("questions") if isinstance(body, dict) else None\n',
            "    body = await request.json()\n"
            '    questions = body.get("questions")\n',
        ),
    ),
    breaks=("jobs.unknown", "errors.shape"),
    expected_failures=frozenset({"unknown_jobs_and_wrong_batches_get_clear_errors"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

BATCH_QUESTIONS_UNCHECKED = Mutant(
    "batch_questions_unchecked",
    "POST /api/batch checks it got a list but not what is in it: an empty question is asked, and "
    "one that is not text is a 500.",
    (
        Edit(
            "jobs.py",
            "    if not all(isinstance(question, str) and question.strip() "
            "for question in questions):\n"
            '        raise BadQuestion("Every question should be some text.")\n',
            "",
        ),
    ),
    breaks=("jobs.unknown",),
    expected_failures=frozenset({"unknown_jobs_and_wrong_batches_get_clear_errors"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

PAGE_POLLS_THE_BATCH_PATH = Mutant(
    "page_polls_the_batch_path",
    "The page follows and stops its job at /api/batch/{id}, a path the app does not serve, not "
    "/api/jobs/{id}: it never shows the job's progress.",
    (
        Edit(
            "static/index.html",
            'show(await send(`/api/jobs/${job}`, "DELETE"));',
            'show(await send(`/api/batch/${job}`, "DELETE"));',
        ),
        Edit(
            "static/index.html",
            'const current = await send(`/api/jobs/${id}`, "GET");',
            'const current = await send(`/api/batch/${id}`, "GET");',
        ),
    ),
    breaks=("jobs.page",),
    expected_failures=frozenset({"the_page_shows_a_job_s_progress"}),
    from_brief=True,
)

PAGE_READS_STATUS_NOT_STATE = Mutant(
    "page_reads_status_not_state",
    "The page reads each item's `status`, a field the job does not have, not its `state`: its "
    "progress never moves.",
    (
        Edit(
            "static/index.html",
            'item.state !== "pending" && item.state !== "active"',
            'item.status !== "pending" && item.status !== "active"',
        ),
        Edit(
            "static/index.html",
            "current.items.filter((item) => item.state === state)",
            "current.items.filter((item) => item.status === state)",
        ),
        Edit(
            "static/index.html",
            'if (item.state === "completed") {',
            'if (item.status === "completed") {',
        ),
        Edit(
            "static/index.html",
            '} else if (item.state === "failed") {',
            '} else if (item.status === "failed") {',
        ),
        Edit(
            "static/index.html",
            "text.textContent = WAITING[item.state];",
            "text.textContent = WAITING[item.status];",
        ),
    ),
    breaks=("jobs.page",),
    expected_failures=frozenset({"the_page_shows_a_job_s_progress"}),
    from_brief=True,
)

ONE_WORKER_PER_CHUNK = Mutant(
    "one_worker_per_chunk",
    "The batch is cut into chunks of MAX_CONCURRENCY questions, one worker per chunk answering "
    "its chunk in order: a batch of up to MAX_CONCURRENCY questions is asked one at a time.",
    (
        Edit("jobs.py", SLOTS, SLOTS + "        self._chunk = settings.max_concurrency\n"),
        Edit(
            "jobs.py",
            "        # Cancelling the job's task cancels every item still running in the group.\n"
            "        async with asyncio.TaskGroup() as group:\n"
            "            for item in job.items:\n"
            "                group.create_task(self._answer(item, request_id))\n",
            "        # One worker per chunk of MAX_CONCURRENCY questions, side by side.\n"
            "        async with asyncio.TaskGroup() as group:\n"
            "            for first in range(0, len(job.items), self._chunk):\n"
            "                chunk = job.items[first : first + self._chunk]\n"
            "                group.create_task(self._answer_in_order(chunk, request_id))\n"
            "\n"
            "    async def _answer_in_order(self, items: list[Item], request_id: str) -> None:\n"
            "        try:\n"
            "            for item in items:\n"
            "                await self._answer(item, request_id)\n"
            "        finally:\n"
            "            for item in items:  # those a cancel stopped before their turn\n"
            '                if item.state == "pending":\n'
            '                    item.state = "cancelled"\n',
        ),
    ),
    breaks=("jobs.parallel",),
    expected_failures=frozenset(
        {
            "a_batch_is_taken_at_once_and_answered_later",
            "a_failed_question_gives_its_turn_back",
            "other_questions_do_not_wait_for_a_batch",
        }
    ),
    reaches=ONLY_JOBS,
    from_brief=True,
)

SLOT_KEPT_BY_A_FAILED_QUESTION = Mutant(
    "slot_kept_by_a_failed_question",
    "The slot is taken with acquire() and given back after the answer is recorded, not in a "
    "finally: each failed or cancelled question keeps its slot, until batches hang pending.",
    (
        Edit(
            "jobs.py",
            "            async with self._slots:\n"
            '                item.state = "active"\n'
            "                answer = await self._answers.answer(item.question)\n"
            + RECORD_RESULT,
            "            await self._slots.acquire()\n"
            '            item.state = "active"\n'
            "            answer = await self._answers.answer(item.question)\n"
            + RECORD_RESULT[4:]
            + "            self._slots.release()\n",
        ),
    ),
    breaks=("jobs.parallel", "jobs.failure"),
    expected_failures=frozenset({"a_failed_question_gives_its_turn_back"}),
    reaches=ONLY_JOBS,
    from_brief=True,
)

MUTANTS = [
    ONE_CALL_AT_A_TIME,
    NO_CAP,
    CAP_PER_JOB,
    CANCEL_ONLY_MARKS,
    ONE_FAILURE_CANCELS_THE_BATCH,
    FAILURE_AS_TEXT,
    POST_WAITS_FOR_THE_ANSWERS,
    NO_ACTIVE_STATE,
    RESULT_WITHOUT_METADATA,
    UNKNOWN_JOB_CRASHES,
    BATCH_REPLY_JOB_ID_KEY,
    BATCH_ANSWERED_WHOLE_WHEN_QUICK,
    BATCH_IN_WAVES,
    BATCH_CAP_HARD_CODED,
    SLOT_RELEASED_BEFORE_THE_CALL,
    ITEMS_WITHOUT_THEIR_QUESTION,
    DEDUPES_WITH_A_SET,
    MERGES_REPEATED_QUESTIONS,
    ACTIVE_BEFORE_ITS_TURN,
    STATE_NAMED_RUNNING,
    RESULT_WITHOUT_REQUEST_ID,
    RESULT_AS_DATACLASS_DICT,
    FAILED_ITEM_STAYS_ACTIVE,
    ITEM_ERROR_WITHOUT_RETRYABLE,
    CANCEL_ANSWERS_204,
    CANCEL_DOES_NOT_WAIT,
    CANCEL_WIPES_COMPLETED,
    CANCEL_SPARES_ACTIVE_CALLS,
    UNKNOWN_JOB_AS_HTTP_EXCEPTION,
    DELETE_UNKNOWN_JOB_UNHANDLED,
    BATCH_BODY_NOT_JSON_CRASHES,
    BATCH_QUESTIONS_UNCHECKED,
    PAGE_POLLS_THE_BATCH_PATH,
    PAGE_READS_STATUS_NOT_STATE,
    ONE_WORKER_PER_CHUNK,
    SLOT_KEPT_BY_A_FAILED_QUESTION,
]

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
    expected_failures=frozenset({"a_batch_runs_in_parallel_under_the_cap"}),
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
        {"a_batch_runs_in_parallel_under_the_cap", "two_batches_share_the_cap"}
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
    expected_failures=frozenset({"one_failure_does_not_fail_the_batch"}),
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
    expected_failures=frozenset({"one_failure_does_not_fail_the_batch"}),
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
    expected_failures=frozenset({"a_batch_is_taken_at_once_and_answered_later"}),
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
]

"""Mutants of the cancellation task."""

from __future__ import annotations

from .edits import Edit, Mutant


JSON_IGNORES_DISCONNECT = Mutant(
    "json_ignores_disconnect",
    "POST /api/answer awaits the answer directly, without watching for the client to leave.",
    (
        Edit(
            "app.py",
            "result = await cancel_on_disconnect(request, lambda: answers.answer(question))",
            "result = await answers.answer(question)",
        ),
    ),
    breaks=("cancellation.answer",),
    expected_failures=frozenset(
        {
            "a_question_asked_again_after_leaving_is_answered",
            "a_shared_answer_stops_when_the_last_tab_closes",
            "leaving_while_the_model_thinks_stops_it",
        }
    ),
)


STREAM_KEEPS_UPSTREAM_RUNNING = Mutant(
    "stream_keeps_upstream_running",
    "The stream reads the model in a background task feeding a queue, and nobody cancels that "
    "task when the client leaves.",
    (
        Edit("streaming.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "streaming.py",
            """\
async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:
    async with contextlib.aclosing(events):
        try:
            async for event in events:
                if isinstance(event, Metadata):
                    yield _event("done", {**event.to_json(), "request_id": request_id})
                else:
                    yield _event("token", {"text": event})
        except AnswerError as error:
            yield _event("error", error.to_json())
""",
            """\
async def _encoded(events: Events, request_id: str) -> typing.AsyncIterator[str]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def produce() -> None:
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    if isinstance(event, Metadata):
                        data = {**event.to_json(), "request_id": request_id}
                        await queue.put(_event("done", data))
                    else:
                        await queue.put(_event("token", {"text": event}))
            except AnswerError as error:
                await queue.put(_event("error", error.to_json()))
            finally:
                await queue.put(None)

    producer = asyncio.create_task(produce())
    while (item := await queue.get()) is not None:
        yield item
    await producer
""",
        ),
    ),
    breaks=("cancellation.stream",),
    expected_failures=frozenset(
        {
            "leaving_a_stream_before_its_first_token_stops_the_model",
            "leaving_a_stream_midway_stops_the_model",
        }
    ),
)


CANCELS_SHARED_WORK = Mutant(
    "cancels_shared_work",
    "A shared call is cancelled as soon as any one of its waiters leaves, not the last one.",
    (
        Edit(
            "inflight.py",
            "            if call.waiters == 0 and not call.task.done():\n",
            "            if not call.task.done():\n",
        ),
    ),
    breaks=("cancellation.shared",),
    expected_failures=frozenset(
        {
            "a_shared_answer_survives_one_tab_closing",
            "cancelling_a_job_spares_a_shared_answer",
        }
    ),
)


# -- written from the brief (issue 12) -------------------------------------------------------------

# The shared call's waiters, counted, and the last one to leave cancelling it (inflight.py).
_WAITERS_COUNTED = (
    "        call.waiters += 1\n"
    "        try:\n"
    "            # Shielded: one waiter being cancelled must not cancel the call the others "
    "share.\n"
    "            return await asyncio.shield(call.task)\n"
    "        finally:\n"
    "            call.waiters -= 1\n"
    "            if call.waiters == 0 and not call.task.done():\n"
    "                self._forget(key, call)  # whoever asks next starts afresh, not a cancelled "
    "call\n"
    "                call.task.cancel()\n"
)


STREAM_WAITS_FOR_FIRST_PIECE = Mutant(
    "stream_waits_for_first_piece",
    "The stream's handler awaits the model's first piece before it returns the response, and a "
    "plain handler is not cancelled when its client leaves: leaving before the first token leaves "
    "the call, and its retries, running until the model starts writing or gives up.",
    (
        Edit(
            "app.py",
            "from .streaming import event_stream\n",
            "from .streaming import event_stream, started\n",
        ),
        Edit(
            "app.py",
            "    return event_stream(answers.stream(question), request.state.request_id)\n",
            "    # Open the stream once the model has started writing, not before.\n"
            "    events = await started(answers.stream(question))\n"
            "    return event_stream(events, request.state.request_id)\n",
        ),
        Edit(
            "streaming.py",
            "async def _encoded(",
            "async def started(events: Events) -> Events:\n"
            '    """`events`, once the first of them has come (or failed)."""\n'
            "    first: str | Metadata | AnswerError\n"
            "    try:\n"
            "        first = await anext(events)\n"
            "    except AnswerError as error:\n"
            "        first = error\n"
            "\n"
            "    async def resumed() -> Events:\n"
            "        async with contextlib.aclosing(events):\n"
            "            if isinstance(first, AnswerError):\n"
            "                raise first\n"
            "            yield first\n"
            "            async for event in events:\n"
            "                yield event\n"
            "\n"
            "    return resumed()\n"
            "\n"
            "\n"
            "async def _encoded(",
        ),
    ),
    breaks=("cancellation.stream",),
    expected_failures=frozenset({"leaving_a_stream_before_its_first_token_stops_the_model"}),
    from_brief=True,
)


KEEPALIVE_READS_IN_A_TASK = Mutant(
    "keepalive_reads_in_a_task",
    "The stream reads the model's pieces into a queue from a task of its own (so that it can send "
    "a keep-alive comment every second of silence), kept in a set as asyncio's docs ask, and "
    "nobody cancels that task when the client leaves: the call to the model runs to its end, "
    "before the first token as midway. (A first version left the task unreferenced: it was "
    "collected with the stream's frame, so the call stopped whenever Python's cyclic garbage "
    "collector happened to run, and a determinism round once saw it stop in time.)",
    (
        Edit("streaming.py", "import contextlib\n", "import asyncio\nimport contextlib\n"),
        Edit(
            "streaming.py",
            'Events = typing.AsyncGenerator["str | Metadata", None]\n',
            'Events = typing.AsyncGenerator["str | Metadata", None]\n'
            "KEEPALIVE = 1.0  # seconds of silence before a comment keeps proxies from closing\n"
            "READERS: set[asyncio.Task[None]] = set()  # kept until they end, as asyncio asks\n"
            "\n"
            "\n"
            "async def _read_all(events: Events, pieces: asyncio.Queue) -> None:\n"
            "    try:\n"
            "        async for piece in events:\n"
            "            pieces.put_nowait(piece)\n"
            "    except Exception as error:  # raised where the stream is written\n"
            "        pieces.put_nowait(error)\n"
            "    pieces.put_nowait(None)\n",
        ),
        Edit(
            "streaming.py",
            "            async for event in events:\n"
            "                if isinstance(event, Metadata):\n",
            "            pieces: asyncio.Queue = asyncio.Queue()\n"
            "            reader = asyncio.ensure_future(_read_all(events, pieces))\n"
            "            READERS.add(reader)\n"
            "            reader.add_done_callback(READERS.discard)\n"
            "            while True:\n"
            "                try:\n"
            "                    event = await asyncio.wait_for(pieces.get(), KEEPALIVE)\n"
            "                except asyncio.TimeoutError:\n"
            '                    yield ": keep-alive\\n\\n"\n'
            "                    continue\n"
            "                if event is None:\n"
            "                    break\n"
            "                if isinstance(event, Exception):\n"
            "                    raise event\n"
            "                if isinstance(event, Metadata):\n",
        ),
    ),
    breaks=("cancellation.stream",),
    expected_failures=frozenset(
        {
            "leaving_a_stream_before_its_first_token_stops_the_model",
            "leaving_a_stream_midway_stops_the_model",
        }
    ),
    from_brief=True,
)


POLLS_FOR_DISCONNECT = Mutant(
    "polls_for_disconnect_every_few_seconds",
    "POST /api/answer checks request.is_disconnected() every three seconds: the call to the model "
    "runs on for up to three seconds after the client has left.",
    (
        Edit(
            "disconnect.py",
            "    # The body is read by now, so the next message the server has for us is the "
            "disconnect.\n"
            '    while (await request.receive())["type"] != "http.disconnect":\n'
            "        pass\n",
            "    while not await request.is_disconnected():\n"
            "        await asyncio.sleep(3.0)  # check on the client now and then\n",
        ),
    ),
    breaks=("cancellation.answer",),
    expected_failures=frozenset(
        {
            "a_question_asked_again_after_leaving_is_answered",
            "a_shared_answer_stops_when_the_last_tab_closes",
            "leaving_while_the_model_thinks_stops_it",
        }
    ),
    from_brief=True,
)


SHARED_CALL_NEVER_CANCELLED = Mutant(
    "shared_call_never_cancelled",
    "Each waiter is shielded from the others, and that is all: the shared call is never "
    "cancelled, so when the only (or last) person waiting leaves, it runs on for nobody.",
    (
        Edit(
            "inflight.py",
            _WAITERS_COUNTED,
            "        # Shielded: one waiter being cancelled must not cancel the call the others "
            "share.\n"
            "        return await asyncio.shield(call.task)\n",
        ),
    ),
    breaks=("cancellation.answer", "cancellation.nothing_left"),
    expected_failures=frozenset(
        {
            "a_question_asked_again_after_leaving_is_answered",
            "a_shared_answer_stops_when_the_last_tab_closes",
            "cancelling_a_job_stops_what_is_left",
            "leaving_while_the_model_thinks_stops_it",
        }
    ),
    from_brief=True,
)


CANCELLED_CALL_KEPT = Mutant(
    "cancelled_call_kept",
    "The last waiter forgets a finished call, but only cancels an unfinished one: the cancelled "
    "call stays in the table, and the same question asked again joins it and fails.",
    (
        Edit(
            "inflight.py",
            "            call.task.add_done_callback(functools.partial(self._forget, key, call))\n",
            "",
        ),
        Edit(
            "inflight.py",
            "            if call.waiters == 0 and not call.task.done():\n"
            "                self._forget(key, call)  # whoever asks next starts afresh, not a "
            "cancelled call\n"
            "                call.task.cancel()\n",
            "            if call.waiters == 0:\n"
            "                if call.task.done():\n"
            "                    self._forget(key, call)  # answered: whoever asks next starts "
            "afresh\n"
            "                else:\n"
            "                    call.task.cancel()\n",
        ),
    ),
    breaks=("cancellation.nothing_left",),
    expected_failures=frozenset({"a_question_asked_again_after_leaving_is_answered"}),
    from_brief=True,
)


WAITER_COUNT_LEAKS = Mutant(
    "waiter_count_leaks",
    "The waiters are counted per question, in a table that outlives the calls, and counted down "
    "only when one leaves: once a question has been answered, the next person to ask it and "
    "leave does not stop its call.",
    (
        Edit(
            "inflight.py",
            "        self._calls: dict[str, _Call[T]] = {}\n",
            "        self._calls: dict[str, _Call[T]] = {}\n"
            "        self._waiters: dict[str, int] = {}  # people waiting, by question\n",
        ),
        Edit(
            "inflight.py",
            _WAITERS_COUNTED,
            "        self._waiters[key] = self._waiters.get(key, 0) + 1\n"
            "        try:\n"
            "            # Shielded: one waiter being cancelled must not cancel the call the "
            "others share.\n"
            "            return await asyncio.shield(call.task)\n"
            "        except asyncio.CancelledError:  # this waiter left\n"
            "            self._waiters[key] -= 1\n"
            "            if self._waiters[key] == 0 and not call.task.done():\n"
            "                self._forget(key, call)  # whoever asks next starts afresh, not a "
            "cancelled call\n"
            "                call.task.cancel()\n"
            "            raise\n",
        ),
    ),
    breaks=("cancellation.nothing_left", "cancellation.answer"),
    expected_failures=frozenset({"a_question_asked_again_after_leaving_is_answered"}),
    from_brief=True,
)


FIRST_ASKER_OWNS_THE_CALL = Mutant(
    "first_asker_owns_the_call",
    "The first person to ask makes the call in their own request and the others wait on a "
    "future: when the first one leaves, the others' answer is cancelled with theirs.",
    (
        Edit(
            "inflight.py",
            "        self._calls: dict[str, _Call[T]] = {}\n",
            "        self._calls: dict[str, asyncio.Future[T]] = {}\n",
        ),
        Edit(
            "inflight.py",
            "        call = self._calls.get(key)\n"
            "        if call is None:\n"
            "            call = self._calls[key] = _Call(asyncio.create_task(start()))\n"
            "            call.task.add_done_callback(functools.partial(self._forget, key, call))\n"
            + _WAITERS_COUNTED,
            "        call = self._calls.get(key)\n"
            "        if call is not None:  # someone asked first: wait for the answer they get\n"
            "            # Shielded: one waiter being cancelled must not cancel the call the "
            "others share.\n"
            "            return await asyncio.shield(call)\n"
            "        call = self._calls[key] = asyncio.get_running_loop().create_future()\n"
            "        try:\n"
            "            value = await start()\n"
            "        except asyncio.CancelledError:\n"
            "            call.cancel()\n"
            "            raise\n"
            "        except Exception as error:\n"
            "            call.set_exception(error)\n"
            "            raise\n"
            "        else:\n"
            "            call.set_result(value)\n"
            "            return value\n"
            "        finally:\n"
            "            self._forget(key, call)\n",
        ),
        Edit(
            "inflight.py",
            "    def _forget(self, key: str, call: _Call[T], *_: object) -> None:\n",
            "    def _forget(self, key: str, call: asyncio.Future[T]) -> None:\n",
        ),
    ),
    breaks=("cancellation.shared",),
    expected_failures=frozenset(
        {
            "a_shared_answer_survives_one_tab_closing",
            "cancelling_a_job_spares_a_shared_answer",
        }
    ),
    from_brief=True,
)


JOB_CANCEL_STOPS_SHARED_CALLS = Mutant(
    "job_cancel_stops_shared_calls",
    "DELETE /api/jobs/{id} also cancels the shared calls of its active questions, by question: "
    "someone else waiting for the same question (POST /api/answer, another job) loses the answer.",
    (
        Edit(
            "inflight.py",
            "    def _forget(self, key: str, call: _Call[T], *_: object) -> None:\n",
            "    def cancel(self, key: str) -> None:\n"
            '        """Stop the call running for `key`, if there is one."""\n'
            "        call = self._calls.pop(key, None)\n"
            "        if call is not None:\n"
            "            call.task.cancel()\n"
            "\n"
            "    def _forget(self, key: str, call: _Call[T], *_: object) -> None:\n",
        ),
        Edit(
            "answers.py",
            "    async def _answer(self, question: str) -> Answer:\n",
            "    def cancel(self, question: str) -> None:\n"
            '        """Stop the call to the model answering `question`, if one is running."""\n'
            "        self._shared.cancel(question)\n"
            "\n"
            "    async def _answer(self, question: str) -> Answer:\n",
        ),
        Edit(
            "jobs.py",
            "        if not job.task.done():\n            job.task.cancel()\n",
            "        if not job.task.done():\n"
            "            for item in job.items:\n"
            '                if item.state == "active":  # close its call to the model now\n'
            "                    self._answers.cancel(item.question)\n"
            "            job.task.cancel()\n",
        ),
    ),
    breaks=("cancellation.shared",),
    expected_failures=frozenset({"cancelling_a_job_spares_a_shared_answer"}),
    from_brief=True,
)


MUTANTS: list[Mutant] = [
    JSON_IGNORES_DISCONNECT,
    STREAM_KEEPS_UPSTREAM_RUNNING,
    CANCELS_SHARED_WORK,
    STREAM_WAITS_FOR_FIRST_PIECE,
    KEEPALIVE_READS_IN_A_TASK,
    POLLS_FOR_DISCONNECT,
    SHARED_CALL_NEVER_CANCELLED,
    CANCELLED_CALL_KEPT,
    WAITER_COUNT_LEAKS,
    FIRST_ASKER_OWNS_THE_CALL,
    JOB_CANCEL_STOPS_SHARED_CALLS,
]

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
        }
    ),
)


MUTANTS: list[Mutant] = [
    JSON_IGNORES_DISCONNECT,
    STREAM_KEEPS_UPSTREAM_RUNNING,
    CANCELS_SHARED_WORK,
]

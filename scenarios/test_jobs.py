"""Jobs: many questions answered in the background, in parallel under a cap, with progress the page
can poll and a way to cancel what is left."""

from __future__ import annotations

import time

import anyio
import pytest

from harness.app_client import AppClient, excerpt
from harness.checks import jobs, page
from harness.checks.errors import is_error
from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.fake_llm.ledger import peak_concurrency
from harness.hosting.launcher import AppSettings
from harness.timing import NOTICED_LEAVING, RELAY

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="jobs",
    points=3,
    title="A batch is taken at once and answered in the background",
    hint="POST /api/batch should start the work in the background (tasks) and answer 202 with "
    'the job\'s "id" right away; GET /api/jobs/{id} then shows an item per question asked, in '
    'order (a question asked twice is two items), and once it is completed its "result": the '
    "same JSON POST /api/answer answers with.",
    checks=["jobs.accepted", "jobs.items", "jobs.result", "jobs.parallel"],
)
async def test_a_batch_is_taken_at_once_and_answered_later(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    thinks = 2 * RELAY  # seconds per question: far longer than replying at once takes (RELAY)
    fake_llm.always(f.ok(latency=thinks))
    asked = jobs.numbered(question, 2)
    batch = await jobs.Batch.start(client, [*asked, asked[0]])  # the same question twice too
    assert batch.reply.took <= RELAY, (
        f"POST /api/batch took {batch.reply.took:.2f}s to answer (allowed: {RELAY}s); it should "
        "answer with the job at once and leave the model to work in the background"
    )
    # The reply must come while the model is still thinking: an app that waits for the answers
    # replies after the model's calls have ended, however fast the machine.
    answered = [call for call in fake_llm.calls if call.finished]
    assert not answered, (
        f"POST /api/batch took {batch.reply.took:.2f}s to answer, until the model had answered "
        f"(it takes {thinks:g}s per question); it should answer with the job at once and leave "
        "the model to work in the background"
    )
    items = await batch.finished()
    calls = fake_llm.calls
    problems = jobs.wrong_answers(items, calls)
    assert not problems, "; ".join(problems)
    assert peak_concurrency(calls) >= 2, (
        f"a batch of {len(items)} questions, fewer than MAX_CONCURRENCY, was asked one question "
        "at a time: ask several at once"
    )
    for item in items:
        call = jobs.answer_call(calls, item["question"])
        assert call is not None and item["result"].get("model") == call.model, (
            f'the result of {item["question"]!r} should say which model answered ("model"), '
            f"as POST /api/answer does: {excerpt(item['result'])}"
        )
    # Every field POST /api/answer's reply has, the result has too, of the same JSON type.
    alone = f"{question} [alone]"
    fake_llm.script(f.ok(), prompt_contains=alone)  # no thinking: scripts come before `always`
    reply = (await client.ask(alone)).json()
    result = items[0]["result"]
    different = {
        name: type(result.get(name)).__name__
        for name, value in reply.items()
        if type(result.get(name)) is not type(value)
    }
    assert not different, (
        f"a completed item's result should be the same JSON as POST /api/answer's reply, whose "
        f"fields are {sorted(reply)}; the result has {different} where the reply has "
        f"{ {name: type(reply[name]).__name__ for name in different} }"
    )


@pytest.mark.scenario(
    task="jobs",
    points=3,
    title="A batch runs in parallel, never above MAX_CONCURRENCY calls at once",
    hint="Answer the questions of a batch concurrently, but with at most MAX_CONCURRENCY calls "
    "to the model at a time (e.g. one asyncio.Semaphore for the app): neither one by one nor "
    "all at once, nor in waves that wait for their slowest question.",
    checks=["jobs.parallel", "jobs.cap", "settings.env"],
)
async def test_a_batch_runs_in_parallel_under_the_cap(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.ok(latency=0.3))
    cap = app_settings.max_concurrency
    questions = jobs.numbered(question, 10)
    fake_llm.always(f.ok(latency=0.9), prompt_contains=questions[0])  # one slow question
    batch = await jobs.Batch.start(client, questions)
    items = await batch.finished()
    calls = fake_llm.calls
    peak = peak_concurrency(calls)
    assert peak <= cap, (
        f"the app had {peak} calls to the model in flight at once for a batch of "
        f"{len(items)} questions; MAX_CONCURRENCY is {cap}"
    )
    assert peak >= 2, (
        f"the app asked the model the {len(items)} questions of a batch one at a time; it may "
        f"ask up to MAX_CONCURRENCY ({cap}) at once"
    )
    problems = jobs.wrong_answers(items, calls)
    assert not problems, "; ".join(problems)
    # A slot freed by a quick question goes to the next at once, not when the slow one ends.
    [slow] = jobs.calls_for(calls, questions[0])
    later = sorted(call.received_at for call in calls)[cap]
    assert slow.ended_at is not None and later < slow.ended_at, (
        f"the first {cap} questions were with the model, one of them for 0.9 s and the others "
        f"for 0.3 s; question {cap + 1} was asked only when the slow one was answered: give a "
        "slot to the next question as soon as any call ends, not batch after batch"
    )


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="One question failing does not fail the others",
    hint="Catch each item's failure on its own: mark that item failed with "
    '{"code", "message", "retryable"} and let the other questions be answered (a TaskGroup or '
    "gather without a try/except around each item cancels or loses them).",
    checks=["jobs.failure"],
)
async def test_one_failure_does_not_fail_the_batch(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    questions = jobs.numbered(question, 4)
    rejected = questions[1]
    fake_llm.always(f.ok(latency=0.3))  # the others are still with the model when it fails
    fake_llm.always(f.error(400), prompt_contains=rejected)  # the newer rule comes first
    batch = await jobs.Batch.start(client, questions)
    items = await batch.finished()
    failed, others = items[1], items[:1] + items[2:]
    assert failed["state"] == "failed", (
        f"the model rejected {rejected!r} (400), yet its item is {failed['state']}: "
        f"{excerpt(failed)}"
    )
    assert is_error(failed.get("error")), (
        'a failed item should say why in "error": {"code": str, "message": str, "retryable": '
        f"bool}}; the app shows {excerpt(failed)}"
    )
    problems = jobs.wrong_answers(others, fake_llm.calls)
    assert not problems, f"one question failed, and the others suffered: {'; '.join(problems)}"


@pytest.mark.scenario(
    task="jobs",
    points=3,
    title="Cancelling a job stops what is left, and keeps what was answered",
    hint="DELETE /api/jobs/{id}: cancel the items still running (closing their requests to the "
    "model) and never start the pending ones; mark both cancelled, leave completed items as "
    "they are, and answer with the job as it is then (after the cancellation, not before).",
    checks=["jobs.cancel"],
)
async def test_cancelling_a_job_stops_what_is_left(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    questions = jobs.numbered(question, 8)
    quick, slow = questions[:2], questions[2:]
    fake_llm.always(f.ok(latency=3.0))  # the slow ones: still thinking when the job is cancelled
    for text in quick:
        fake_llm.always(f.ok(), prompt_contains=text)
    batch = await jobs.Batch.start(client, questions)

    def under_way(items: list[jobs.Item]) -> bool:
        answered = all(item["state"] == "completed" for item in items[: len(quick)])
        return answered and any(not call.finished for call in fake_llm.calls)

    await batch.wait(
        under_way, "the quick questions to be answered while others are with the model"
    )
    cancelled_at = time.monotonic()
    told = await batch.cancel()
    replied_at = time.monotonic()
    assert [item["state"] for item in told] == ["completed"] * len(quick) + ["cancelled"] * len(
        slow
    ), (
        f"DELETE /api/jobs/{{id}} should answer with the job as cancelling left it: the "
        f"{len(quick)} answered items completed, the others cancelled; it showed "
        f"{jobs.states(told)}"
    )

    try:  # the app has until NOTICED_LEAVING to hang up on the model
        await fake_llm.ledger.wait_for(
            lambda calls: all(call.finished for call in calls), timeout=NOTICED_LEAVING
        )
    except TimeoutError:
        pass
    calls = fake_llm.calls
    running_on = [call for call in calls if not call.finished]
    assert not running_on, (
        f"the job was cancelled, but {len(running_on)} of its calls to the model were still "
        f"running {NOTICED_LEAVING}s later: close the upstream requests of cancelled items"
    )
    for call in calls:
        if call.disconnected_at is not None:
            late = call.disconnected_at - max(cancelled_at, call.received_at)
            assert late <= NOTICED_LEAVING, (
                f"the app hung up on the model {late:.2f}s after the job was cancelled "
                f"(allowed: {NOTICED_LEAVING}s)"
            )
    # A call the app sent before the DELETE can reach the fake up to RELAY after the reply, on a
    # loaded machine; one that arrives later was started after the cancellation. (One started at
    # the cancellation itself would still be running, above: the slow ones think for 3 s.)
    await anyio.sleep(2 * RELAY)  # time enough for an app that still starts pending items to do so
    started = [call for call in fake_llm.calls if call.received_at > replied_at + RELAY]
    assert not started, (
        f"after the job was cancelled, the app still asked the model {len(started)} of its "
        "pending questions; a cancelled item should never start"
    )

    items = await batch.items()
    problems = jobs.wrong_answers(items[: len(quick)], fake_llm.calls)
    assert not problems, f"items answered before the job was cancelled changed: {problems[0]}"
    left = items[len(quick) :]
    assert all(item["state"] == "cancelled" for item in left), (
        f"after DELETE, the {len(slow)} items not answered yet should be cancelled; they are: "
        f"{jobs.states(left)}"
    )


@pytest.mark.scenario(
    task="jobs",
    points=1,
    title="The page sends a batch and shows its progress",
    hint="Let the page send many questions to POST /api/batch, then poll GET /api/jobs/{id} and "
    "show each item's state (and its answer once completed).",
    checks=["jobs.page"],
)
async def test_the_page_shows_a_job_s_progress(client: AppClient) -> None:
    text = await page.read(client)
    page.expect(text, "send a batch, then poll its job", "/api/batch", "/api/jobs/")
    for field in ("items", "state"):
        what = f'read the job\'s "{field}" to show its progress'
        page.expect_pattern(text, what, page.field(field))

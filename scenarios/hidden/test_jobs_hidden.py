"""Jobs, hidden: two batches share the cap, progress matches what the model is doing, wrong
requests get clear errors, failed questions give their turn back, and a batch's questions get the
retries and the fallback (graded along with those tasks)."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from harness.app_client import CLIENT_GIVES_UP, AppClient, Reply, excerpt
from harness.checks import jobs
from harness.checks.errors import is_error
from harness.fake_llm import Call, FakeLLM
from harness.fake_llm import faults as f
from harness.fake_llm.ledger import peak_concurrency
from harness.hosting.launcher import AppSettings
from harness.timing import FAST_RETRIES, RELAY

pytestmark = pytest.mark.anyio


@pytest.mark.scenario(
    task="jobs",
    points=3,
    title="Two batches at once still stay under MAX_CONCURRENCY together",
    hint="MAX_CONCURRENCY caps the app's calls to the model, not each batch's: share one "
    "semaphore (or pool of workers) between all jobs.",
    checks=["jobs.cap"],
)
async def test_two_batches_share_the_cap(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.ok(latency=0.3))
    cap = app_settings.max_concurrency
    questions = jobs.numbered(question, 12)
    batches: list[jobs.Batch] = []

    async def start(asked: list[str]) -> None:
        batches.append(await jobs.Batch.start(client, asked))

    async with anyio.create_task_group() as tasks:  # two researchers paste their questions
        tasks.start_soon(start, questions[:6])
        tasks.start_soon(start, questions[6:])
    items = [item for batch in batches for item in await batch.finished()]
    calls = fake_llm.calls
    peak = peak_concurrency(calls)
    assert peak <= cap, (
        f"with two batches running, the app had {peak} calls to the model in flight at once; "
        f"MAX_CONCURRENCY ({cap}) is for the whole app, every batch together"
    )
    problems = jobs.wrong_answers(items, calls)
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="A job's progress shows which questions are with the model",
    hint="While a batch runs, an item is active from when its call to the model starts until it "
    "ends, and pending while it waits for a slot under MAX_CONCURRENCY.",
    checks=["jobs.states"],
)
async def test_progress_shows_what_the_model_is_doing(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.ok(latency=1.5))  # long enough to look at the job while the model thinks
    batch = await jobs.Batch.start(client, jobs.numbered(question, 6))
    # The model's calls and the job change under our feet: compare them only when the ledger is
    # the same before and after the look at the job, and only until a first call has ended.
    seen = "no look at the job found a call to the model in flight"
    give_up = time.monotonic() + CLIENT_GIVES_UP
    while True:
        before = fake_llm.calls
        items = await batch.items()
        after = fake_llm.calls
        assert not any(call.finished for call in after) and time.monotonic() < give_up, (
            "the job's items should be active while their calls to the model are in flight, "
            f"and pending before they are sent; {seen}"
        )
        if after and _snapshot(before) == _snapshot(after):
            expected = [_expected_state(after, item["question"]) for item in items]
            if [item["state"] for item in items] == expected:
                break
            seen = f"the job showed {jobs.states(items)}; the model's calls: {', '.join(expected)}"
        await anyio.sleep(jobs.POLL)
    await client.request("DELETE", f"/api/jobs/{batch.id}")  # done looking; not graded here


def _snapshot(calls: list[Call]) -> list[tuple[int, bool]]:
    return [(call.id, call.finished) for call in calls]


def _expected_state(calls: list[Call], question: str) -> str:
    """The state of `question`'s item, from the model's calls: none (pending), or in flight."""
    return "active" if jobs.calls_for(calls, question) else "pending"


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="An unknown job is a 404, a wrong batch a 400, both with a JSON error",
    hint='Answer an unknown job id with 404, and a body that is not {"questions": [...]} (a list '
    "of questions, none empty) with 400, each with the JSON error shape "
    '{"code", "message", "retryable"}.',
    checks=["jobs.unknown", "errors.shape"],
)
async def test_unknown_jobs_and_wrong_batches_get_clear_errors(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    problems = []
    for method in ("GET", "DELETE"):
        reply = await client.request(method, "/api/jobs/no-such-job")
        if reply.status != 404 or not is_error(_json(reply.text)):
            problems.append(f"{reply.what} answered {reply.status} {reply.text[:100]!r}")
    asked = question
    wrong = (asked, {"question": asked}, {"questions": asked}, {"questions": []})
    for body in (*wrong, {"questions": [asked, 3]}, {"questions": [asked, "  "]}):
        reply = await client.request("POST", "/api/batch", json=body)
        if reply.status != 400 or not is_error(_json(reply.text)):
            sent = json.dumps(body)
            problems.append(f"POST /api/batch {sent} answered {reply.status} {reply.text[:100]!r}")
    assert not problems, (
        'expected a 404 for an unknown job and a 400 for a body that is not {"questions": [...]} '
        '(a list of questions, none empty), each with a JSON {"code", "message", "retryable"}: '
        + "; ".join(problems)
    )
    # Its own question only: an app may call the model for reasons of its own (at start-up, say).
    refused_yet_asked = [call for call in fake_llm.calls if question in call.prompt]
    assert not refused_yet_asked, "a batch the app refused still reached the model"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="A question that failed gives its turn back",
    hint="Release an item's slot under MAX_CONCURRENCY however its call ends, failed included "
    "(async with semaphore, or try/finally): otherwise each failure leaves one slot fewer, "
    "until batches wait for ever.",
    checks=["jobs.cap", "jobs.failure"],
)
@pytest.mark.app_settings(MAX_CONCURRENCY="2")
async def test_a_failed_question_gives_its_turn_back(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    rejected = jobs.numbered(f"{question} (rejected)", app_settings.max_concurrency)
    for text in rejected:
        fake_llm.always(f.error(400), prompt_contains=text)
    first = await jobs.Batch.start(client, rejected)
    await first.finished()  # failed: how is the other scenarios' business, the slots are ours
    fake_llm.always(f.ok(latency=0.2), prompt_contains=f"{question} (later)")
    later = await jobs.Batch.start(
        client, jobs.numbered(f"{question} (later)", app_settings.max_concurrency)
    )
    items = await later.finished()
    problems = jobs.wrong_answers(items, fake_llm.calls)
    assert not problems, f"after a batch whose questions all failed: {'; '.join(problems)}"
    peak = peak_concurrency([call for call in fake_llm.calls if "(later)" in call.prompt])
    assert peak == app_settings.max_concurrency, (
        f"after a batch whose {len(rejected)} questions all failed, the next batch had at most "
        f"{peak} call(s) to the model at once, not MAX_CONCURRENCY "
        f"({app_settings.max_concurrency}): the failed questions kept their slots"
    )


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="A batch's questions get the retries: passing failures retried, rejected ones not",
    hint="Each question of a batch is asked the way POST /api/answer asks: a 503 or a dropped "
    "connection is retried, a 400 is not (its item fails with the error shape).",
    checks=["retries.statuses", "retries.network", "retries.rejected"],
    needs=["retries"],
)
@pytest.mark.app_settings(MAX_CONCURRENCY="4")
async def test_a_batch_s_questions_get_the_retries(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    overloaded, dropped, rejected, fine = questions = jobs.numbered(question, 4)
    fake_llm.script(f.error(503), prompt_contains=overloaded)  # then it answers
    fake_llm.script(f.reset(), prompt_contains=dropped)
    fake_llm.always(f.error(400), prompt_contains=rejected)
    batch = await jobs.Batch.start(client, questions)
    items = await batch.finished()
    calls = fake_llm.calls
    problems = jobs.wrong_answers([items[0], items[1], items[3]], calls)
    for text, failure in ((overloaded, "a 503"), (dropped, "a dropped connection")):
        made = len(jobs.calls_for(calls, text))
        if made != 2:
            problems.append(f"after {failure}, {text!r} took {made} call(s), not 2")
    failed = items[2]
    if failed["state"] != "failed" or not is_error(failed.get("error")):
        problems.append(f"rejected (400), {rejected!r} should be failed with its error: {failed}")
    models = [call.model for call in jobs.calls_for(calls, rejected)]
    if max(models.count(model) for model in models) != 1:
        problems.append(f"the rejected {rejected!r} was asked {len(models)} times")
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="A batch's questions fall back to the smaller model, and say so",
    hint="Each question of a batch gets the fallback POST /api/answer has: with the primary "
    'down, its result comes from FALLBACK_MODEL, with "model" and "fallback": true; a rejected '
    "question goes to no other model.",
    checks=["fallback.unavailable", "fallback.says_so", "fallback.not_rejected"],
    needs=["fallback"],
)
@pytest.mark.app_settings(**FAST_RETRIES)
async def test_a_batch_s_questions_fall_back(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    fake_llm.always(f.error(503), model=app_settings.primary_model)
    answered, rejected = questions = jobs.numbered(question, 2)
    fake_llm.always(f.error(400), prompt_contains=rejected)  # the newer rule comes first
    batch = await jobs.Batch.start(client, questions)
    items = await batch.finished()
    calls = fake_llm.calls
    problems = jobs.wrong_answers(items[:1], calls)
    result = items[0].get("result") or {}
    if not problems and (
        result.get("model") != app_settings.fallback_model or result.get("fallback") is not True
    ):
        problems.append(
            f'with the primary down, the result of {answered!r} should say "model": '
            f'{app_settings.fallback_model!r} and "fallback": true: {excerpt(result)}'
        )
    sent_on = {call.model for call in jobs.calls_for(calls, rejected)}
    if app_settings.fallback_model in sent_on:
        problems.append(f"the primary rejected {rejected!r} (400), and it was sent to the fallback")
    assert not problems, "; ".join(problems)


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="Other users' questions do not wait for a batch's turn",
    hint="MAX_CONCURRENCY caps the calls made for batch work only: a question asked on "
    "POST /api/answer while a batch fills every slot goes to the model at once.",
    checks=["app.responsive", "jobs.cap"],
)
@pytest.mark.app_settings(MAX_CONCURRENCY="2")
async def test_other_questions_do_not_wait_for_a_batch(
    client: AppClient, fake_llm: FakeLLM, question: str, app_settings: AppSettings
) -> None:
    slow = jobs.numbered(f"{question} (batch)", app_settings.max_concurrency)
    # The other question's trip is four relays (to the app, to the model, back, to the user),
    # each up to RELAY on a loaded machine: 0.8 s was crossed once in 16 busy determinism
    # rounds. Six relays leave room, and cost nothing: the scenario ends with that answer.
    fake_llm.always(f.ok(latency=6 * RELAY), prompt_contains=f"{question} (batch)")
    await jobs.Batch.start(client, slow)
    await fake_llm.ledger.wait_for(
        lambda calls: len(calls) == len(slow), what="the batch to fill every slot"
    )
    reply = await client.ask(f"{question} (someone else)")  # the model answers it at once
    answered = time.monotonic()
    reply.answer()
    batch_ends = [call.ended_at for call in fake_llm.calls if "(batch)" in call.prompt]
    assert all(ended is None or answered < ended for ended in batch_ends), (
        f"while a batch had MAX_CONCURRENCY ({app_settings.max_concurrency}) calls to the model "
        "in flight, another user's question waited for one of them to end: the cap is for batch "
        "work only"
    )


@pytest.mark.scenario(
    task="jobs",
    points=2,
    title="Cancelling a job spares an answer another user shares",
    hint="A batch question may share its call with someone asking the same question on "
    "POST /api/answer: DELETE cancels the job's part only, and the other user still gets the "
    "answer.",
    checks=["jobs.cancel", "cancellation.shared"],
)
async def test_cancelling_a_job_spares_a_shared_answer(
    client: AppClient, fake_llm: FakeLLM, question: str
) -> None:
    fake_llm.always(f.ok(latency=1.0))
    batch = await jobs.Batch.start(client, [question])
    await fake_llm.ledger.wait_for(lambda calls: len(calls) == 1, what="the batch's call")
    tab = client.tab(question)  # someone else asks the same question meanwhile
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tab.run)
        await tab.sent()
        await anyio.sleep(RELAY)  # the app has taken the question in
        await batch.cancel()
    assert isinstance(tab.reply, Reply) and tab.reply.status == 200, (
        "a user asked the question a batch was asking; when the job was cancelled, that user got "
        f"{tab.reply.status if isinstance(tab.reply, Reply) else 'no reply'} instead of the "
        "answer: cancel the job's own part of a shared call, not the call"
    )
    answered = [call.text for call in fake_llm.calls if call.outcome == "completed"]
    assert tab.reply.answer() in answered, "the user's answer was not the model's"

"""Jobs, hidden: two batches share the cap, progress matches what the model is doing, and wrong
requests get clear errors."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from harness.app_client import CLIENT_GIVES_UP, AppClient
from harness.checks import jobs
from harness.checks.errors import is_error
from harness.fake_llm import Call, FakeLLM
from harness.fake_llm import faults as f
from harness.fake_llm.ledger import peak_concurrency
from harness.launcher import AppSettings

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
    hint='Answer an unknown job id with 404, and a body that is not {"questions": [...]} with '
    '400, each with the JSON error shape {"code", "message", "retryable"}.',
    checks=["jobs.unknown", "errors.shape"],
)
async def test_unknown_jobs_and_wrong_batches_get_clear_errors(
    client: AppClient, fake_llm: FakeLLM
) -> None:
    problems = []
    for method in ("GET", "DELETE"):
        reply = await client.request(method, "/api/jobs/no-such-job")
        if reply.status != 404 or not is_error(_json(reply.text)):
            problems.append(f"{reply.what} answered {reply.status} {reply.text[:100]!r}")
    asked = "What does retrieval do to accuracy?"
    for body in (asked, {"question": asked}, {"questions": asked}):  # none is a list of questions
        reply = await client.request("POST", "/api/batch", json=body)
        if reply.status != 400 or not is_error(_json(reply.text)):
            sent = json.dumps(body)
            problems.append(f"POST /api/batch {sent} answered {reply.status} {reply.text[:100]!r}")
    assert not problems, (
        'expected a 404 for an unknown job and a 400 for a body that is not {"questions": [...]}, '
        'each with a JSON {"code", "message", "retryable"}: ' + "; ".join(problems)
    )
    assert not fake_llm.calls, "a batch the app refused still reached the model"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None

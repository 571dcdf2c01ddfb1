"""What the jobs scenarios check: a batch's job, polled as the page polls it, against the calls
the provider saw.

A job, as ``GET /api/jobs/{id}`` shows it (the brief's "Jobs" task)::

    {"id": "...", "items": [{"question": "...", "state": "completed", "result": {...}},
                            {"question": "...", "state": "failed", "error": {...}}, ...]}

Each item is one question, in the order asked; its state is pending, active, completed, failed or
cancelled. A completed item's result is checked against the answer the model wrote, a failed
item's error against the shape every error of the app has.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass

import anyio

from ..app_client import CLIENT_GIVES_UP, AppClient, Reply, excerpt
from ..fake_llm.ledger import Call

Item = dict[str, typing.Any]
STATES = ("pending", "active", "completed", "failed", "cancelled")
UNFINISHED = ("pending", "active")
POLL = 0.02  # seconds between two looks at a job: a page polls less often, never more


def numbered(question: str, count: int) -> list[str]:
    """`count` distinct questions, none inside another (fault rules match prompts by substring)."""
    return [f"{question} [{n}]" for n in range(1, count + 1)]


@dataclass
class Batch:
    """A batch of questions a scenario sent, and the app's job answering it."""

    client: AppClient
    questions: list[str]
    id: str
    reply: Reply  # to POST /api/batch

    @classmethod
    async def start(cls, client: AppClient, questions: list[str]) -> Batch:
        """``POST /api/batch``, after checking it answered with a job id. Any 2xx will do: the
        brief asks for 202, but what matters here is that the work goes on in the background."""
        reply = await client.request("POST", "/api/batch", json={"questions": questions})
        assert reply.status in (200, 201, 202), (
            f"POST /api/batch answered {reply.status}; it should take the batch at once (202) "
            f"and answer with its job's id: {excerpt(reply.text)}"
        )
        job_id = reply.json().get("id")
        assert isinstance(job_id, str) and job_id, (
            'POST /api/batch should answer at once with the job\'s "id", for GET '
            f"/api/jobs/{{id}}; after {reply.took:.1f}s it answered {excerpt(reply.text)}"
        )
        return cls(client, questions, job_id, reply)

    async def items(self) -> list[Item]:
        """``GET /api/jobs/{id}``: the job's items, checked."""
        reply = await self.client.request("GET", f"/api/jobs/{self.id}")
        assert reply.status == 200, (
            f"GET /api/jobs/{{id}} answered {reply.status} for a job the app had started: "
            f"{excerpt(reply.text)}"
        )
        return self.check(reply)

    async def cancel(self) -> list[Item]:
        """``DELETE /api/jobs/{id}``: the items of the job it answered with, checked."""
        reply = await self.client.request("DELETE", f"/api/jobs/{self.id}")
        assert reply.status == 200, (
            f"DELETE /api/jobs/{{id}} answered {reply.status} for a running job; it should "
            f"cancel what is left and answer with the job: {excerpt(reply.text)}"
        )
        return self.check(reply)

    def check(self, reply: Reply) -> list[Item]:
        """The job's items, after checking there is one per question, in order, each with a
        state the brief names."""
        items = reply.json().get("items")
        assert isinstance(items, list) and len(items) == len(self.questions), (
            f'{reply.what} should show the job\'s "items", one per question '
            f"({len(self.questions)}), in the order they were asked: {excerpt(reply.text)}"
        )
        for question, item in zip(self.questions, items):
            assert isinstance(item, dict) and item.get("question") == question, (
                f"{reply.what} should list the questions as they were asked, in order, each as "
                f'{{"question": ..., "state": ...}}; for {question!r} it shows {excerpt(item)}'
            )
            assert item.get("state") in STATES, (
                f"an item's state should be one of {', '.join(STATES)}; {reply.what} shows "
                f"{item.get('state')!r} for {question!r}"
            )
        return items

    async def wait(
        self,
        ready: typing.Callable[[list[Item]], bool],
        what: str,
        timeout: float = CLIENT_GIVES_UP,
    ) -> list[Item]:
        """Poll the job, as the page does, until `ready(items)`; fail after `timeout` seconds."""
        give_up = time.monotonic() + timeout
        while not ready(items := await self.items()):
            assert time.monotonic() < give_up, (
                f"waited {timeout:g}s for {what}; the job's items are still: {states(items)}"
            )
            await anyio.sleep(POLL)
        return items

    async def finished(self) -> list[Item]:
        """The items once none is pending or active any more."""
        return await self.wait(
            lambda items: all(item["state"] not in UNFINISHED for item in items),
            "every question to be answered (or to fail)",
        )


def states(items: list[Item]) -> str:
    """``completed, active, pending``: the items' states, in order."""
    return ", ".join(str(item.get("state")) for item in items)


def calls_for(calls: list[Call], question: str) -> list[Call]:
    return [call for call in calls if question in call.prompt]


def answer_call(calls: list[Call], question: str) -> Call | None:
    """The call that answered `question`: the last one the model completed."""
    done = [call for call in calls_for(calls, question) if call.outcome == "completed"]
    return done[-1] if done else None


def wrong_answers(items: list[Item], calls: list[Call]) -> list[str]:
    """What is wrong with items that should be completed with the answer the model wrote (in
    their ``result``, as ``POST /api/answer`` gives it), one sentence each."""
    problems = []
    for item in items:
        question, result = item["question"], item.get("result")
        call = answer_call(calls, question)
        if item["state"] != "completed":
            problems.append(f"{question!r} is {item['state']}, not completed")
        elif not isinstance(result, dict) or call is None:
            problems.append(f'{question!r} is completed without a "result" object: {excerpt(item)}')
        elif result.get("answer") != call.text:
            problems.append(
                f'the "result" of {question!r} has the answer {excerpt(result.get("answer"))}; '
                f"the model wrote {excerpt(call.text)}"
            )
    return problems

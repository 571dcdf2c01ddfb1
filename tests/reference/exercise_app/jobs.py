"""Batches of questions, answered in the background while the page polls for progress.

``POST /api/batch`` starts a job and answers at once with its id. The job answers its questions in
parallel, but the app as a whole keeps at most ``MAX_CONCURRENCY`` of them with the model at a time
(one semaphore for every job): two researchers pasting twenty questions each must not hit the
provider with forty calls. ``GET /api/jobs/{id}`` shows each question as pending (waiting for a
slot), active (with the model), completed, failed or cancelled; ``DELETE`` cancels what is left,
closing the upstream requests in flight.

Jobs live in this process's memory, finished ones included, until the app stops: enough for one
server, but a real deployment would expire them, and keep them in a store its workers share.
"""

from __future__ import annotations

import asyncio
import logging
import typing
import uuid
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse

from .answers import AnswerService
from .errors import AnswerError, BadQuestion
from .settings import Settings

MAX_QUESTIONS = 100  # per batch: one request must not queue unbounded work

logger = logging.getLogger(__name__)

State = typing.Literal["pending", "active", "completed", "failed", "cancelled"]
JSON = dict[str, typing.Any]


class UnknownJob(AnswerError):
    """No job has this id: it never existed, or the app has restarted since."""

    status_code, code, retryable = 404, "not_found", False


@dataclass
class Item:
    question: str
    state: State = "pending"
    result: JSON | None = None  # once completed: the answer, as POST /api/answer gives it
    error: JSON | None = None  # once failed: {"code", "message", "retryable"}

    def to_json(self) -> JSON:
        data: JSON = {"question": self.question, "state": self.state}
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass
class Job:
    items: list[Item]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # unguessable: ids are the keys
    task: asyncio.Task[None] = field(init=False, repr=False)  # answers the items; see Jobs

    @property
    def done(self) -> bool:
        return all(item.state not in ("pending", "active") for item in self.items)

    def to_json(self) -> JSON:
        return {"id": self.id, "done": self.done, "items": [item.to_json() for item in self.items]}


class Jobs:
    """The app's batch jobs, and the one limit on the model calls they make together."""

    def __init__(self, answers: AnswerService, settings: Settings) -> None:
        self._answers = answers
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._jobs: dict[str, Job] = {}

    def start(self, questions: list[str], request_id: str) -> Job:
        """Start answering `questions` in the background; `request_id` is the batch request's,
        which every answer's metadata carries, as POST /api/answer's does."""
        job = Job([Item(question) for question in questions])
        job.task = asyncio.create_task(self._run(job, request_id), name=f"job {job.id}")
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"There is no job {job_id!r}.")
        return job

    async def cancel(self, job: Job) -> None:
        """Cancel the job's unfinished items, and return once they say so: their upstream
        requests are closed, and those still waiting for a slot will never start."""
        if not job.task.done():
            job.task.cancel()
            await asyncio.wait([job.task])

    async def aclose(self) -> None:
        """Cancel every job still running, and wait for them: the app is stopping."""
        running = [job.task for job in self._jobs.values() if not job.task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)

    async def _run(self, job: Job, request_id: str) -> None:
        # Cancelling the job's task cancels every item still running in the group.
        async with asyncio.TaskGroup() as group:
            for item in job.items:
                group.create_task(self._answer(item, request_id))

    async def _answer(self, item: Item, request_id: str) -> None:
        """Answer one item, keeping its failure to itself: the rest of the batch goes on."""
        try:
            async with self._slots:
                item.state = "active"
                answer = await self._answers.answer(item.question)
                item.result = {**answer.to_json(), "request_id": request_id}
        except asyncio.CancelledError:
            item.state = "cancelled"
            raise
        except AnswerError as error:
            item.state, item.error = "failed", error.to_json()
        except Exception:
            logger.exception("answering %r in a batch failed", item.question)
            internal = AnswerError("Something went wrong while answering this question.")
            item.state, item.error = "failed", internal.to_json()
        else:
            item.state = "completed"


async def start_batch(request: Request) -> JSONResponse:
    """``{"questions": [...]}`` -> 202 with the job, whose answers come later."""
    try:
        questions = await _read_questions(request)
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    jobs: Jobs = request.app.state.jobs
    job = jobs.start(questions, request.state.request_id)
    location = {"Location": f"/api/jobs/{job.id}"}
    return JSONResponse(job.to_json(), status_code=202, headers=location)


async def show_job(request: Request) -> JSONResponse:
    jobs: Jobs = request.app.state.jobs
    try:
        job = jobs.get(request.path_params["id"])
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    return JSONResponse(job.to_json())


async def cancel_job(request: Request) -> JSONResponse:
    """Cancel what is left of the job; what was answered stays answered."""
    jobs: Jobs = request.app.state.jobs
    try:
        job = jobs.get(request.path_params["id"])
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    await jobs.cancel(job)
    return JSONResponse(job.to_json())


async def _read_questions(request: Request) -> list[str]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    questions = body.get("questions") if isinstance(body, dict) else None
    if not isinstance(questions, list) or not questions:
        raise BadQuestion('Send {"questions": ["...", ...]}, a list of questions.')
    if len(questions) > MAX_QUESTIONS:
        raise BadQuestion(f"Send at most {MAX_QUESTIONS} questions at once.")
    if not all(isinstance(question, str) and question.strip() for question in questions):
        raise BadQuestion("Every question should be some text.")
    return [question.strip() for question in questions]

"""The research assistant: ask a question about a few papers, get an answer from the LLM."""

from __future__ import annotations

import contextlib
import typing
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .answers import AnswerService
from .breaker import CircuitBreaker
from .disconnect import cancel_on_disconnect
from .errors import AnswerError, BadQuestion
from .extract import Extractor, extract
from .jobs import Jobs, cancel_job, show_job, start_batch
from .llm import LLMClient
from .request_id import RequestIdMiddleware
from .settings import Settings
from .streaming import event_stream

PAGE = Path(__file__).parent / "static" / "index.html"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client left first"; nobody will read it


async def index(request: Request) -> FileResponse:
    return FileResponse(PAGE)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def answer(request: Request) -> Response:
    """The answer and its metadata, once the whole answer is ready."""
    try:
        question = await read_question(request)
        answers: AnswerService = request.app.state.answers
        result = await cancel_on_disconnect(request, lambda: answers.answer(question))
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse({**result.to_json(), "request_id": request.state.request_id})


async def answer_stream(request: Request) -> Response:
    """The answer as Server-Sent Events, piece by piece as the model writes it."""
    try:
        question = await read_question(request)
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    answers: AnswerService = request.app.state.answers
    return event_stream(answers.stream(question), request.state.request_id)


async def read_question(request: Request) -> str:
    try:
        body = await request.json()
    except ValueError:
        body = None
    question = body.get("question") if isinstance(body, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("Ask a question.")
    return question.strip()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> typing.AsyncIterator[None]:
    settings = Settings.from_env()
    llm = LLMClient(settings)
    # One for the app: the primary's failures count whichever endpoint met them.
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cool_down)
    answers = AnswerService(llm, settings, breaker)
    app.state.answers = answers
    app.state.jobs = Jobs(answers, settings)
    app.state.extractor = Extractor(llm, settings, breaker)
    yield
    await app.state.jobs.aclose()
    await llm.aclose()


app = Starlette(
    routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/answer/stream", answer_stream, methods=["POST"]),
        Route("/api/batch", start_batch, methods=["POST"]),
        Route("/api/jobs/{id}", show_job, methods=["GET"]),
        Route("/api/jobs/{id}", cancel_job, methods=["DELETE"]),
        Route("/api/extract", extract, methods=["POST"]),
    ],
    middleware=[Middleware(RequestIdMiddleware)],
    lifespan=lifespan,
)

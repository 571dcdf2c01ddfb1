"""The research assistant: ask a question about a few papers, get an answer from the LLM."""

from __future__ import annotations

import contextlib
import typing
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from .answers import AnswerService
from .extract import Extractor, UnknownPaper
from .llm import LLMClient
from .settings import Settings

PAGE = Path(__file__).parent / "static" / "index.html"


async def index(request: Request) -> FileResponse:
    return FileResponse(PAGE)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def answer(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    question = body.get("question") if isinstance(body, dict) else None
    if not isinstance(question, str) or not question.strip():
        return JSONResponse({"error": "Ask a question."}, status_code=400)
    completion = await request.app.state.answers.answer(question.strip())
    return JSONResponse({"answer": completion.text, "model": completion.model})


async def answer_batch(request: Request) -> JSONResponse:
    """Answer many questions: ``{"questions": [...]}`` -> ``{"answers": [...]}``, in order."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    questions = body.get("questions") if isinstance(body, dict) else None
    if not isinstance(questions, list) or not questions:
        return JSONResponse({"error": "Send a list of questions."}, status_code=400)
    answers = []
    for question in questions:
        completion = await request.app.state.answers.answer(str(question).strip())
        answers.append({"answer": completion.text, "model": completion.model})
    return JSONResponse({"answers": answers})


async def extract(request: Request) -> JSONResponse:
    """The fields of one paper, read by the model: ``{"paper": "retrieval"}``."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    paper = body.get("paper") if isinstance(body, dict) else None
    try:
        fields = await request.app.state.extractor.extract(paper)
    except UnknownPaper as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse(fields)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> typing.AsyncIterator[None]:
    settings = Settings.from_env()
    llm = LLMClient(settings)
    app.state.answers = AnswerService(llm, settings)
    app.state.extractor = Extractor(llm, settings)
    yield
    await llm.aclose()


app = Starlette(
    routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/batch", answer_batch, methods=["POST"]),
        Route("/api/extract", extract, methods=["POST"]),
    ],
    lifespan=lifespan,
)

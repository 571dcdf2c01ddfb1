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


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> typing.AsyncIterator[None]:
    settings = Settings.from_env()
    llm = LLMClient(settings)
    app.state.answers = AnswerService(llm, settings)
    yield
    await llm.aclose()


app = Starlette(
    routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/answer", answer, methods=["POST"]),
    ],
    lifespan=lifespan,
)

"""The fake provider's HTTP surface: OpenAI's chat-completions API, and an admin path for people.

Requests are checked as a provider would (bad JSON → 400, unknown model → 404, both in the
provider's error shape), recorded in the ledger, and answered by a `Playback` of the fault the
plan picks. Only a fake made with ``admin=True`` (the `fake-llm` command's) has the admin path,
under a random token that `FakeLLM.admin_url` and the command print; under the scenarios there
is none, so an app under test can neither stumble on it nor look for it.
"""

from __future__ import annotations

import time
import typing

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from . import text, wire
from .faults import Fault, FaultError
from .ledger import Ledger
from .plan import FaultPlan
from .playback import Playback
from .playback import Request as PlaybackRequest

if typing.TYPE_CHECKING:
    from .provider import FakeLLM

_HIDDEN_HEADERS = {"authorization", "cookie", "api-key", "x-api-key"}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def build_app(fake: FakeLLM) -> Starlette:
    async def chat_completions(request: Request) -> Response | Playback:
        received_at = time.monotonic()
        ledger, plan = fake.books_for(request.path_params.get("key"))
        try:
            body = await _parse(request, fake)
        except ClientDisconnect:  # gone while still sending its request: nothing to answer
            _record_unanswered(ledger, received_at, outcome="disconnected")
            return Response(status_code=400)
        except BadRequest as exc:
            _record_unanswered(ledger, received_at, outcome="rejected", status=exc.status, text=exc.message)
            return JSONResponse(wire.error_body(exc.status, exc.message), status_code=exc.status)
        return _playback(fake, ledger, plan, request, body, received_at)

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "faultfirst"}
                    for m in fake.plan.models
                ],
            }
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Unknown request URL: {request.method} {request.url.path}."
        body = wire.error_body(status, message)
        body["error"]["code"] = "unknown_url"  # as OpenAI says; not the table's "model_not_found"
        return JSONResponse(body, status_code=status)

    api: list[BaseRoute] = [
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
    ]
    routes: list[BaseRoute] = []
    if fake.admin_token is not None:
        routes.append(Mount(f"/_faultfirst/{fake.admin_token}", routes=_admin_routes(fake)))
    routes += [Mount("/v1", routes=api), Mount("/{key}/v1", routes=api)]  # see FakeLLM.url_for
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_found},
    )


async def _parse(request: Request, fake: FakeLLM) -> dict[str, typing.Any]:
    if fake.api_key is not None:
        if request.headers.get("authorization") != f"Bearer {fake.api_key}":
            raise BadRequest(401, "Incorrect API key provided.")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "The request body must be a JSON object.")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise BadRequest(400, "you must provide a model parameter")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest(400, "'messages' must be a non-empty array of message objects.")
    if model not in fake.plan.models:
        raise BadRequest(404, f"The model `{model}` does not exist or you do not have access to it.")
    return body


def _record_unanswered(
    ledger: Ledger, received_at: float, *, outcome: str, status: int | None = None, text: str = ""
) -> None:
    """Put a request that never reached a fault in the ledger: every request is recorded."""
    now = time.monotonic()
    ledger.open(
        received_at=received_at,
        model="?",
        stream=False,
        prompt="",
        fault="none",
        status=status,
        ended_at=now,
        disconnected_at=now if outcome == "disconnected" else None,
        outcome=outcome,
        text=text,
    )


def _playback(
    fake: FakeLLM,
    ledger: Ledger,
    plan: FaultPlan,
    http_request: Request,
    body: dict[str, typing.Any],
    received_at: float,
) -> Playback:
    model = body["model"]
    stream = bool(body.get("stream"))
    prompt = wire.prompt_text(body["messages"])
    fault, rng = plan.next_fault(model, prompt)
    call = ledger.open(
        received_at=received_at,
        model=model,
        stream=stream,
        prompt=prompt,
        fault=fault.describe(),
        prompt_tokens=text.count_tokens(prompt),
        request_headers={
            k: v for k, v in http_request.headers.items() if k.lower() not in _HIDDEN_HEADERS
        },
    )
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    request = PlaybackRequest(
        id=f"chatcmpl-ff{call.id:06d}",
        model=model,
        stream=stream,
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        prompt_tokens=call.prompt_tokens,
        answer=_answer(fault, prompt, model, plan.seed, json_wanted=_asks_for_json(body)),
    )
    return Playback(
        request=request,
        fault=fault,
        rng=rng,
        call=call,
        ledger=ledger,
        inflight=fake.inflight,
        pacer=fake.pacer,
        find_transport=fake.find_transport,
    )


def _asks_for_json(body: dict[str, typing.Any]) -> bool:
    """Whether the request asks for JSON, with OpenAI's ``response_format`` (a JSON object, or
    one following a schema)."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )


def _answer(fault: Fault, prompt: str, model: str, seed: int, *, json_wanted: bool) -> list[str]:
    if fault.kind == "near_miss_json":
        assert fault.json_style is not None
        return text.tokenize(text.near_miss(fault.content or text.record_json(prompt, seed), fault.json_style))
    if fault.content is not None:
        return text.tokenize(fault.content)
    if json_wanted and fault.kind == "ok":  # a paper record, not prose: what was asked for
        return text.tokenize(text.record_json(prompt, seed))
    answer = text.answer_tokens(prompt, model, seed, fault.tokens)
    if fault.after_tokens is not None and len(answer) <= fault.after_tokens:
        answer = text.answer_tokens(prompt, model, seed, fault.after_tokens + 1)
    return answer


def _admin_routes(fake: FakeLLM) -> list[Route]:
    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "models": list(fake.plan.models),
                "profile": fake.plan.profile,
                "seed": fake.plan.seed,
                "calls": len(fake.ledger),
                "scripted_faults_left": fake.plan.remaining(),
            }
        )

    async def ledger(request: Request) -> Response:
        if request.method == "DELETE":
            fake.ledger.clear()
            return Response(status_code=204)
        return JSONResponse(fake.ledger.to_json())

    async def plan(request: Request) -> Response:
        """Set faults over HTTP: ``{"script": [...], "always": {...}, "model", "prompt_contains",
        "profile", "seed"}``, each fault as in `Fault.to_dict`."""
        try:
            _apply_plan(fake, await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await index(request)

    return [
        Route("/", index, methods=["GET"]),
        Route("/ledger", ledger, methods=["GET", "DELETE"]),
        Route("/plan", plan, methods=["POST"]),
    ]


def _apply_plan(fake: FakeLLM, data: typing.Any) -> None:
    if not isinstance(data, dict):
        raise FaultError("the plan must be a JSON object")
    where = {"model": data.get("model"), "prompt_contains": data.get("prompt_contains")}
    if "script" in data:
        fake.script(*(Fault.from_dict(item) for item in data["script"]), **where)
    if "always" in data:
        fake.always(Fault.from_dict(data["always"]), **where)
    if "profile" in data:
        fake.use_profile(data["profile"], seed=data.get("seed"))

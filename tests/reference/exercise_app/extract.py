"""A paper's card (its title, year and keywords), read by the model and checked.

Asked for JSON, models get it almost right more often than not: they wrap it in a Markdown code
fence, say a sentence before or after it, or leave a trailing comma. `read_card` takes the JSON
object out of such an answer. An answer that still holds no valid card goes back to the model
once, with what was wrong; if the model misses again, the user is told so with a 502.
"""

from __future__ import annotations

import json
import re
import typing

from starlette.requests import Request
from starlette.responses import JSONResponse

from .breaker import CircuitBreaker
from .deadline import Deadline
from .errors import AnswerError, BadQuestion, InvalidModelOutput
from .fallback import with_fallback
from .llm import LLMClient
from .papers import PAPERS
from .settings import Settings

SHAPE = '{"title": string, "year": integer, "keywords": [string, ...]}'
INSTRUCTIONS = (
    "Read this abstract and fill in the paper's card: its title, the year it was published, and "
    f"three keywords. Answer with one JSON object in this shape, and nothing else: {SHAPE}"
)
ANSWER_AGAIN = f"Answer again with the JSON object only, in this shape: {SHAPE}"
JSON = {"type": "json_object"}  # the provider's JSON mode: fewer near-misses, not none
REPAIRS = 1  # more calls to fix an answer that holds no card: past one, they seldom help

Messages = list[dict[str, str]]

# A JSON string, matched whole so that the commas inside it are left alone, or a trailing comma.
_STRING_OR_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=\s*[}\]])')

# What each field of a card must be, and how to tell.
_FIELDS: dict[str, tuple[str, typing.Callable[[typing.Any], bool]]] = {
    "title": ("a non-empty string", lambda value: isinstance(value, str) and bool(value.strip())),
    "year": ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "keywords": (
        "a list of strings",
        lambda value: isinstance(value, list) and all(isinstance(word, str) for word in value),
    ),
}


class Card(typing.TypedDict):
    title: str
    year: int
    keywords: list[str]


class UnknownPaper(BadQuestion):
    pass


class Extractor:
    def __init__(self, llm: LLMClient, settings: Settings, breaker: CircuitBreaker) -> None:
        self._llm = llm
        self._settings = settings
        self._breaker = breaker  # the app's, which answers share too

    async def extract(self, paper: str) -> Card:
        """The card of `paper`, as the model reads its abstract.

        An answer that holds no valid card is sent back to the model with what is wrong with it,
        `REPAIRS` times at most. Every call gets the retries and the fallback model of any other,
        all within one deadline for the whole request.
        """
        messages: Messages = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": PAPERS[paper]},
        ]
        deadline = Deadline.after(self._settings.request_deadline)
        problem = ""
        for _ in range(1 + REPAIRS):
            answer = await self._ask(messages, deadline)
            try:
                return read_card(answer)
            except ValueError as error:
                problem = str(error)
            messages = [
                *messages,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"That is not a valid card: {problem}. {ANSWER_AGAIN}"},
            ]
        raise InvalidModelOutput(
            f"The model did not answer with a valid card, even when asked again: {problem}."
        )

    async def _ask(self, messages: Messages, deadline: Deadline) -> str:
        completion, _ = await with_fallback(
            lambda model: self._llm.complete(messages, model, response_format=JSON),
            self._settings,
            deadline,
            self._breaker,
        )
        return completion.text


def read_card(answer: str) -> Card:
    """The card in a model's answer: its first JSON object, trailing commas dropped, checked
    field by field. Raises `ValueError` saying what is wrong."""
    return _checked(_first_object(_without_trailing_commas(answer)))


def _without_trailing_commas(text: str) -> str:
    return _STRING_OR_TRAILING_COMMA.sub(
        lambda match: match.group() if match.group().startswith('"') else "", text
    )


def _first_object(text: str) -> dict[str, typing.Any]:
    """The first JSON object in `text`, whatever is around it: a code fence, a sentence."""
    decoder = json.JSONDecoder()
    for opening in re.finditer(r"\{", text):
        try:
            fields: dict[str, typing.Any] = decoder.raw_decode(text, opening.start())[0]
        except ValueError:
            continue
        return fields
    raise ValueError("the answer holds no complete JSON object")


def _checked(fields: dict[str, typing.Any]) -> Card:
    problems = [
        f'"{name}" should be {kind}, not {json.dumps(fields[name])}'
        if name in fields
        else f'"{name}" is missing'
        for name, (kind, fits) in _FIELDS.items()
        if not fits(fields.get(name))
    ]
    if problems:
        raise ValueError("; ".join(problems))
    return Card(title=fields["title"], year=fields["year"], keywords=fields["keywords"])


async def extract(request: Request) -> JSONResponse:
    """``{"paper": "retrieval"}`` -> that paper's card, ``{"title", "year", "keywords"}``."""
    try:
        paper = await read_paper(request)
        extractor: Extractor = request.app.state.extractor
        card = await extractor.extract(paper)
    except AnswerError as error:
        return JSONResponse(error.to_json(), status_code=error.status_code)
    return JSONResponse(card)


async def read_paper(request: Request) -> str:
    try:
        body = await request.json()
    except ValueError:
        body = None
    paper = body.get("paper") if isinstance(body, dict) else None
    if not isinstance(paper, str) or paper not in PAPERS:
        raise UnknownPaper(f"Choose one of the papers: {', '.join(PAPERS)}.")
    return paper

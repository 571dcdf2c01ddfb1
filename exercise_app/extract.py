"""Reading a paper's fields (title, year, keywords) with the model, as JSON."""

from __future__ import annotations

import json
import typing

from .llm import LLMClient
from .papers import PAPERS
from .settings import Settings

INSTRUCTIONS = (
    "Read this abstract and answer with JSON only, in this shape: "
    '{"title": string, "year": integer, "keywords": [string, string, string]}'
)


class UnknownPaper(ValueError):
    pass


class Extractor:
    def __init__(self, llm: LLMClient, settings: Settings) -> None:
        self._llm = llm
        self._settings = settings

    async def extract(self, paper: object) -> dict[str, typing.Any]:
        if not isinstance(paper, str) or paper not in PAPERS:
            raise UnknownPaper(f"Choose a paper: {', '.join(PAPERS)}.")
        messages = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": PAPERS[paper]},
        ]
        completion = await self._llm.complete(messages, self._settings.primary_model)
        return json.loads(completion.text)

"""Mutants of the structured task: reading a paper's card from the model's JSON."""

from __future__ import annotations

from .edits import Edit, Mutant

# Every edit here is in extract.py, or in the error class only it raises: only POST /api/extract
# runs them.
ONLY_STRUCTURED = ("structured",)

READ_CARD = "    return _checked(_first_object(_without_trailing_commas(answer)))\n"

# -- parsing --------------------------------------------------------------------------------------

BARE_JSON_LOADS = Mutant(
    "bare_json_loads",
    "The model's answer goes straight to json.loads: a fence, prose or a trailing comma fails it.",
    (Edit("extract.py", READ_CARD, "    return _checked(json.loads(answer))\n"),),
    breaks=("structured.near_miss",),
    expected_failures=frozenset(
        {
            "json_in_a_code_fence_is_read",
            "json_with_prose_or_a_trailing_comma_is_read",
            "near_misses_of_any_kind_are_read",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

STRIPS_FENCES_ONLY = Mutant(
    "strips_fences_only",
    "A ```json fence is stripped before json.loads, but prose and trailing commas are not handled.",
    (
        Edit(
            "extract.py",
            READ_CARD,
            '    answer = answer.strip().removeprefix("```json").removesuffix("```")\n'
            "    return _checked(json.loads(answer))\n",
        ),
    ),
    breaks=("structured.near_miss",),
    expected_failures=frozenset(
        {
            "json_with_prose_or_a_trailing_comma_is_read",
            "near_misses_of_any_kind_are_read",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

KEEPS_TRAILING_COMMAS = Mutant(
    "keeps_trailing_commas",
    "The JSON object is found in fences and prose, but a trailing comma still makes it invalid.",
    (Edit("extract.py", READ_CARD, "    return _checked(_first_object(answer))\n"),),
    breaks=("structured.near_miss",),
    expected_failures=frozenset(
        {
            "json_with_prose_or_a_trailing_comma_is_read",
            "near_misses_of_any_kind_are_read",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

TRAILING_COMMAS_IN_OBJECTS_ONLY = Mutant(
    "trailing_commas_in_objects_only",
    "A trailing comma is dropped before a closing brace, not before a closing bracket (`[1, 2,]`).",
    (Edit("extract.py", r",(?=\s*[}\]])", r",(?=\s*})"),),
    breaks=("structured.near_miss",),
    expected_failures=frozenset({"near_misses_of_any_kind_are_read"}),
    reaches=ONLY_STRUCTURED,
)

# -- validation and repair ------------------------------------------------------------------------

NO_VALIDATION = Mutant(
    "no_validation",
    "Any JSON object is the card: a missing field or a year that is not a number reaches the user.",
    (
        Edit(
            "extract.py",
            READ_CARD,
            "    return typing.cast(Card, _first_object(_without_trailing_commas(answer)))\n",
        ),
    ),
    breaks=("structured.checked",),
    expected_failures=frozenset(
        {
            "json_in_a_code_fence_is_read",
            "output_that_stays_invalid_is_a_502",
            "wrong_shaped_output_is_repaired",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

NO_REPAIR = Mutant(
    "no_repair",
    "An invalid answer is a 502 at once: the model is never asked to repair it.",
    (Edit("extract.py", "REPAIRS = 1 ", "REPAIRS = 0 "),),
    breaks=("structured.repair",),
    expected_failures=frozenset(
        {
            "invalid_output_is_repaired_once",
            "output_that_stays_invalid_is_a_502",
            "wrong_shaped_output_is_repaired",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

REPAIRS_UNTIL_VALID = Mutant(
    "repairs_until_valid",
    "An invalid answer is sent back to the model again and again (three repairs), not once.",
    (Edit("extract.py", "REPAIRS = 1 ", "REPAIRS = 3 "),),
    breaks=("structured.repair",),
    expected_failures=frozenset({"output_that_stays_invalid_is_a_502"}),
    reaches=ONLY_STRUCTURED,
)

# -- errors ---------------------------------------------------------------------------------------

INVALID_OUTPUT_IS_A_500 = Mutant(
    "invalid_output_is_a_500",
    "The error for an answer that stays invalid is not an AnswerError: it escapes as a 500.",
    (
        Edit(
            "errors.py",
            "class InvalidModelOutput(AnswerError):",
            "class InvalidModelOutput(Exception):",
        ),
    ),
    breaks=("structured.invalid",),
    expected_failures=frozenset({"output_that_stays_invalid_is_a_502"}),
    reaches=ONLY_STRUCTURED,
)

ERRORS_NOT_IN_SHAPE = Mutant(
    "errors_not_in_shape",
    'The extract endpoint answers its errors as {"error": message}, without code and retryable.',
    (
        Edit(
            "extract.py",
            "        return JSONResponse(error.to_json(), status_code=error.status_code)\n",
            '        return JSONResponse({"error": str(error)}, status_code=error.status_code)\n',
        ),
    ),
    breaks=("structured.invalid", "errors.shape",),
    expected_failures=frozenset(
        {
            "a_card_s_repair_shares_the_deadline",
            "an_unknown_paper_is_a_400",
            "extracting_a_card_gets_the_retries",
            "output_that_stays_invalid_is_a_502",
        }
    ),
    reaches=ONLY_STRUCTURED,
)

UNKNOWN_PAPER_UNCHECKED = Mutant(
    "unknown_paper_unchecked",
    "The paper's name is not checked against the papers: an unknown one fails with a 500.",
    (
        Edit(
            "extract.py",
            "    if not isinstance(paper, str) or paper not in PAPERS:\n",
            "    if not isinstance(paper, str):\n",
        ),
    ),
    breaks=("structured.unknown_paper",),
    expected_failures=frozenset({"an_unknown_paper_is_a_400"}),
    reaches=ONLY_STRUCTURED,
)


# -- written from the brief (issue 12) ------------------------------------------------------------

_CARD = '    return Card(title=fields["title"], year=fields["year"], keywords=fields["keywords"])\n'
_NOT_A_CARD = '        raise ValueError("; ".join(problems))\n'

CARD_KEEPS_EXTRA_FIELDS = Mutant(
    "card_keeps_extra_fields",
    "Once its fields are checked, the model's whole object is the card: whatever else the model "
    "wrote (authors, a summary) reaches the user beside title, year and keywords.",
    (Edit("extract.py", _CARD, "    return typing.cast(Card, fields)  # checked: it is a card\n"),),
    breaks=("structured.card",),
    expected_failures=frozenset({"json_in_a_code_fence_is_read"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

KEYWORDS_CUT_TO_THREE = Mutant(
    "keywords_cut_to_three",
    "The card keeps the first three keywords, as many as the model was asked for: a fourth one "
    "the model wrote is silently dropped.",
    (
        Edit(
            "extract.py",
            _CARD,
            "    # The card has three keywords, as the model was asked.\n"
            "    keywords = fields[\"keywords\"][:3]\n"
            '    return Card(title=fields["title"], year=fields["year"], keywords=keywords)\n',
        ),
    ),
    breaks=("structured.card",),
    expected_failures=frozenset({"near_misses_of_any_kind_are_read"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

CARDS_CACHED_BY_THE_INSTRUCTIONS = Mutant(
    "cards_cached_by_the_instructions",
    "Cards are cached by their prompt's first message, the instructions, which are the same for "
    "every paper: after the first extraction, every paper gets that first paper's card.",
    (
        Edit(
            "extract.py",
            "        self._settings = settings\n",
            "        self._settings = settings\n"
            "        self._cards: dict[str, Card] = {}  # ask once per paper\n",
        ),
        Edit(
            "extract.py",
            "        deadline = Deadline.after(self._settings.request_deadline)\n"
            '        problem = ""\n',
            '        key = messages[0]["content"]\n'
            "        if key in self._cards:\n"
            "            return self._cards[key]\n"
            "        deadline = Deadline.after(self._settings.request_deadline)\n"
            '        problem = ""\n',
        ),
        Edit(
            "extract.py",
            "                return read_card(answer)\n",
            "                card = self._cards[key] = read_card(answer)\n"
            "                return card\n",
        ),
    ),
    breaks=("structured.card",),
    expected_failures=frozenset(
        {
            "extracting_a_card_gets_the_retries",
            "json_with_prose_or_a_trailing_comma_is_read",
            "near_misses_of_any_kind_are_read",
            "wrong_shaped_output_is_repaired",
        }
    ),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

TRAILING_COMMA_WITHOUT_WHITESPACE = Mutant(
    "trailing_comma_without_whitespace",
    'Trailing commas are dropped with str.replace(",}", "}"): one followed by a new line or a '
    "space, as in pretty-printed JSON, is left and costs a repair.",
    (
        Edit(
            "extract.py",
            READ_CARD,
            '    answer = answer.replace(",}", "}").replace(",]", "]")  # trailing commas\n'
            "    return _checked(_first_object(answer))\n",
        ),
    ),
    breaks=("structured.near_miss",),
    expected_failures=frozenset(
        {
            "json_with_prose_or_a_trailing_comma_is_read",
            "near_misses_of_any_kind_are_read",
        }
    ),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

FIRST_BRACE_ONLY = Mutant(
    "first_brace_only",
    "The JSON is read from the answer's first `{`: a sentence before the card that holds a brace "
    "(the shape echoed back, say) makes a good card unreadable, and costs a repair.",
    (
        Edit(
            "extract.py",
            """\
    decoder = json.JSONDecoder()
    for opening in re.finditer(r"\\{", text):
        try:
            fields: dict[str, typing.Any] = decoder.raw_decode(text, opening.start())[0]
        except ValueError:
            continue
        return fields
    raise ValueError("the answer holds no complete JSON object")
""",
            """\
    start = text.find("{")
    if start < 0:
        raise ValueError("the answer holds no JSON object")
    fields: dict[str, typing.Any] = json.JSONDecoder().raw_decode(text, start)[0]
    return fields
""",
        ),
    ),
    breaks=("structured.near_miss",),
    expected_failures=frozenset({"json_with_prose_or_a_trailing_comma_is_read"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

YEAR_STRING_COERCED = Mutant(
    "year_string_coerced",
    'A year written as a string ("2024") is taken and turned into 2024 instead of being sent '
    "back for a repair.",
    (
        Edit(
            "extract.py",
            '    "year": ("an integer", '
            "lambda value: isinstance(value, int) and not isinstance(value, bool)),\n",
            '    "year": ("a year", lambda value: str(value).strip().isdigit()),'
            '  # 2024 or "2024"\n',
        ),
        Edit(
            "extract.py",
            _CARD,
            '    return Card(title=fields["title"], year=int(fields["year"]), '
            'keywords=fields["keywords"])\n',
        ),
    ),
    breaks=("structured.checked",),
    expected_failures=frozenset(
        {
            "output_that_stays_invalid_is_a_502",
            "wrong_shaped_output_is_repaired",
        }
    ),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

KEYWORD_ITEMS_UNCHECKED = Mutant(
    "keyword_items_unchecked",
    "`keywords` is checked to be a list, not a list of strings: numbers or objects in it reach "
    "the user instead of being repaired.",
    (
        Edit(
            "extract.py",
            "        lambda value: isinstance(value, list)"
            " and all(isinstance(word, str) for word in value),\n",
            "        lambda value: isinstance(value, list),\n",
        ),
    ),
    breaks=("structured.checked",),
    expected_failures=frozenset({"wrong_shaped_output_is_repaired"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

MISSING_FIELDS_NOT_CHECKED = Mutant(
    "missing_fields_not_checked",
    "Only the fields the model wrote are checked: a card with a field missing is accepted, and "
    "the user gets that field as null.",
    (
        Edit(
            "extract.py",
            "        if not fits(fields.get(name))\n",
            "        if name in fields and not fits(fields[name])\n",
        ),
        Edit(
            "extract.py",
            _CARD,
            "    return typing.cast(Card, {name: fields.get(name) for name in _FIELDS})\n",
        ),
    ),
    breaks=("structured.checked",),
    expected_failures=frozenset({"wrong_shaped_output_is_repaired"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

REPAIRED_ANSWER_UNCHECKED = Mutant(
    "repaired_answer_unchecked",
    "The repaired answer is trusted once it is JSON (the model was just told the shape): a "
    "repair that is still wrong-shaped reaches the user as a 200.",
    (
        Edit(
            "extract.py",
            """\
        for _ in range(1 + REPAIRS):
            answer = await self._ask(messages, deadline)
            try:
                return read_card(answer)
""",
            """\
        for repair in range(1 + REPAIRS):
            answer = await self._ask(messages, deadline)
            try:
                if repair:  # the model was just told the shape: its JSON is the card
                    return typing.cast(Card, _first_object(_without_trailing_commas(answer)))
                return read_card(answer)
""",
        ),
    ),
    breaks=("structured.checked", "structured.invalid"),
    expected_failures=frozenset({"output_that_stays_invalid_is_a_502"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

_REPAIR_MESSAGES = """\
            messages = [
                *messages,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"That is not a valid card: {problem}. {ANSWER_AGAIN}"},
            ]
"""

REPAIR_IS_A_PLAIN_RETRY = Mutant(
    "repair_is_a_plain_retry",
    "The \"repair\" asks the model the same question again: the invalid answer and what is wrong "
    "with it are never sent back.",
    (
        Edit(
            "extract.py",
            _REPAIR_MESSAGES,
            "            # Models are not deterministic: asking again is usually enough.\n",
        ),
    ),
    breaks=("structured.repair",),
    expected_failures=frozenset({"invalid_output_is_repaired_once"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

REPAIR_FORGETS_THE_PAPER = Mutant(
    "repair_forgets_the_paper",
    "The repair sends the model its answer and what is wrong with it, but not the conversation "
    "before: neither the instructions nor the paper's abstract.",
    (
        Edit(
            "extract.py",
            _REPAIR_MESSAGES,
            """\
            messages = [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"That is not a valid card: {problem}. {ANSWER_AGAIN}"},
            ]
""",
        ),
    ),
    breaks=("structured.repair",),
    expected_failures=frozenset({"invalid_output_is_repaired_once"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

WRONG_SHAPE_NOT_REPAIRED = Mutant(
    "wrong_shape_not_repaired",
    "Only an answer that is not JSON is sent back for repair; JSON with a field missing or of the "
    "wrong type is a 502 at once.",
    (
        Edit(
            "extract.py",
            _NOT_A_CARD,
            "        raise InvalidModelOutput("
            "f\"The model's card is not valid: {'; '.join(problems)}.\")\n",
        ),
    ),
    breaks=("structured.repair", "structured.checked"),
    expected_failures=frozenset({"wrong_shaped_output_is_repaired"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

UNPARSEABLE_NOT_REPAIRED = Mutant(
    "unparseable_not_repaired",
    "Only a wrong-shaped card is sent back for repair; an answer with no JSON in it is a 502 at "
    "once.",
    (
        Edit(
            "extract.py",
            '    raise ValueError("the answer holds no complete JSON object")\n',
            '    raise InvalidModelOutput("The model did not answer with JSON.")\n',
        ),
    ),
    breaks=("structured.repair",),
    expected_failures=frozenset(
        {
            "invalid_output_is_repaired_once",
            "output_that_stays_invalid_is_a_502",
        }
    ),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

INVALID_OUTPUT_IS_A_422 = Mutant(
    "invalid_output_is_a_422",
    "An answer still invalid after its repair is a 422 Unprocessable Entity, not a 502: the user's "
    "request was fine, the model's answer was not.",
    (
        Edit(
            "errors.py",
            'status_code, code, retryable = 502, "invalid_model_output", True',
            'status_code, code, retryable = 422, "invalid_model_output", True',
        ),
    ),
    breaks=("structured.invalid",),
    expected_failures=frozenset({"output_that_stays_invalid_is_a_502"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

WRONG_SHAPE_RAISES_TYPE_ERROR = Mutant(
    "wrong_shape_raises_type_error",
    "A card with a field missing or of the wrong type raises TypeError, which the repair loop "
    "(catching ValueError) does not catch: a 500 at once.",
    (Edit("extract.py", _NOT_A_CARD, '        raise TypeError("; ".join(problems))\n'),),
    breaks=("structured.invalid", "structured.checked", "structured.repair"),
    expected_failures=frozenset(
        {
            "output_that_stays_invalid_is_a_502",
            "wrong_shaped_output_is_repaired",
        }
    ),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

GIVES_UP_WITH_THE_LAST_ANSWER = Mutant(
    "gives_up_with_the_last_answer",
    "When the repair fails too, the last JSON the model wrote is answered as the card, with a "
    "200: something is better than nothing.",
    (
        Edit(
            "extract.py",
            """\
        raise InvalidModelOutput(
            f"The model did not answer with a valid card, even when asked again: {problem}."
        )
""",
            """\
        try:  # no valid card: what the model wrote is better than nothing
            return typing.cast(Card, _first_object(_without_trailing_commas(answer)))
        except ValueError:
            raise InvalidModelOutput(
                f"The model did not answer with a valid card, even when asked again: {problem}."
            ) from None
""",
        ),
    ),
    breaks=("structured.invalid",),
    expected_failures=frozenset({"output_that_stays_invalid_is_a_502"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

UNKNOWN_PAPER_IS_A_404 = Mutant(
    "unknown_paper_is_a_404",
    "An unknown paper is a 404 Not Found (no such resource), not the 400 the brief asks for.",
    (
        Edit(
            "extract.py",
            "class UnknownPaper(BadQuestion):\n    pass\n",
            "class UnknownPaper(BadQuestion):\n    status_code = 404  # no such paper\n",
        ),
    ),
    breaks=("structured.unknown_paper",),
    expected_failures=frozenset({"an_unknown_paper_is_a_400"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

UNKNOWN_PAPER_SENT_TO_THE_MODEL = Mutant(
    "unknown_paper_sent_to_the_model",
    "A paper that is not in papers.py is sent to the model by its name (it may know it): the user "
    "gets a made-up card, and pays for the call, instead of a 400.",
    (
        Edit(
            "extract.py",
            '            {"role": "user", "content": PAPERS[paper]},\n',
            '            {"role": "user", "content": PAPERS.get(paper, paper)},  # or its name\n',
        ),
        Edit(
            "extract.py",
            "    if not isinstance(paper, str) or paper not in PAPERS:\n",
            "    if not isinstance(paper, str) or not paper.strip():\n",
        ),
    ),
    breaks=("structured.unknown_paper",),
    expected_failures=frozenset({"an_unknown_paper_is_a_400"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)

PAPER_TYPE_UNCHECKED = Mutant(
    "paper_type_unchecked",
    'The paper is looked up in PAPERS without checking it is a string: {"paper": ["retrieval"]} '
    "fails with a 500 (unhashable list) instead of a 400.",
    (
        Edit(
            "extract.py",
            "    if not isinstance(paper, str) or paper not in PAPERS:\n",
            "    if paper not in PAPERS:\n",
        ),
    ),
    breaks=("structured.unknown_paper",),
    expected_failures=frozenset({"an_unknown_paper_is_a_400"}),
    reaches=ONLY_STRUCTURED,
    from_brief=True,
)


MUTANTS: list[Mutant] = [
    BARE_JSON_LOADS,
    STRIPS_FENCES_ONLY,
    KEEPS_TRAILING_COMMAS,
    TRAILING_COMMAS_IN_OBJECTS_ONLY,
    NO_VALIDATION,
    NO_REPAIR,
    REPAIRS_UNTIL_VALID,
    INVALID_OUTPUT_IS_A_500,
    ERRORS_NOT_IN_SHAPE,
    UNKNOWN_PAPER_UNCHECKED,
    CARD_KEEPS_EXTRA_FIELDS,
    KEYWORDS_CUT_TO_THREE,
    CARDS_CACHED_BY_THE_INSTRUCTIONS,
    TRAILING_COMMA_WITHOUT_WHITESPACE,
    FIRST_BRACE_ONLY,
    YEAR_STRING_COERCED,
    KEYWORD_ITEMS_UNCHECKED,
    MISSING_FIELDS_NOT_CHECKED,
    REPAIRED_ANSWER_UNCHECKED,
    REPAIR_IS_A_PLAIN_RETRY,
    REPAIR_FORGETS_THE_PAPER,
    WRONG_SHAPE_NOT_REPAIRED,
    UNPARSEABLE_NOT_REPAIRED,
    INVALID_OUTPUT_IS_A_422,
    WRONG_SHAPE_RAISES_TYPE_ERROR,
    GIVES_UP_WITH_THE_LAST_ANSWER,
    UNKNOWN_PAPER_IS_A_404,
    UNKNOWN_PAPER_SENT_TO_THE_MODEL,
    PAPER_TYPE_UNCHECKED,
]

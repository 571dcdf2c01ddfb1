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
    expected_failures=frozenset({"wrong_shaped_output_is_repaired"}),
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
            "an_unknown_paper_is_a_400",
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
]

"""Mutants of the fallback task."""

from __future__ import annotations

from .edits import Edit, Mutant


NO_FALLBACK = Mutant(
    "no_fallback",
    "FALLBACK_MODEL is never tried: when the primary is unavailable the answer fails.",
    (
        Edit(
            "fallback.py",
            "        for model in models:\n",
            "        for model in (settings.primary_model,):\n",
        ),
    ),
    breaks=("fallback.unavailable",),
    expected_failures=frozenset(
        {
            "a_failing_primary_is_left_alone",
            "a_stream_falls_back_too",
            "fallback_rather_than_wait_past_the_deadline",
            "the_fallback_answers_when_the_primary_is_down",
        }
    ),
)


FALLS_BACK_ON_CLIENT_ERRORS = Mutant(
    "falls_back_on_client_errors",
    "A request the provider rejected (400, 401, 403, 404, 422) is sent to the fallback model.",
    (
        Edit(
            "fallback.py",
            "                if is_transient(error):\n                    last_error = error\n",
            "                if is_transient(error) or isinstance(error, ProviderError):\n"
            "                    last_error = error\n",
        ),
    ),
    breaks=("fallback.not_rejected",),
    expected_failures=frozenset(
        {
            "rejected_requests_do_not_fall_back",
        }
    ),
)


ALWAYS_FALLBACK = Mutant(
    "always_fallback",
    "The models are tried in the wrong order, so every answer comes from the fallback model.",
    (
        Edit(
            "fallback.py",
            "        models = (settings.primary_model, settings.fallback_model)\n",
            "        models = (settings.fallback_model, settings.primary_model)\n",
        ),
    ),
    breaks=("fallback.not_recovering",),
    expected_failures=frozenset(
        {
            "an_answer_carries_typed_metadata",
            "metadata_covers_every_attempt",
            "no_fallback_when_the_primary_recovers",
            "rejected_requests_do_not_fall_back",
        }
    ),
)


NO_CIRCUIT_BREAKER = Mutant(
    "no_circuit_breaker",
    "The circuit breaker is made afresh for every request, so it never sees enough failures in a "
    "row to open.",
    (
        Edit(
            "fallback.py",
            "    if breaker.allows_call():\n",
            "    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cool_down)\n"
            "    if breaker.allows_call():\n",
        ),
    ),
    breaks=("fallback.breaker",),
    expected_failures=frozenset(
        {
            "a_failing_primary_is_left_alone",
        }
    ),
)


MUTANTS: list[Mutant] = [
    NO_FALLBACK,
    FALLS_BACK_ON_CLIENT_ERRORS,
    ALWAYS_FALLBACK,
    NO_CIRCUIT_BREAKER,
]

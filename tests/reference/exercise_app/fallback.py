"""Falling back to the smaller model when the primary one is unavailable, or known to be down."""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass

from .breaker import CircuitBreaker
from .deadline import Deadline
from .errors import UpstreamRejected, UpstreamUnavailable
from .llm import ProviderError
from .retry import is_transient, with_retries
from .settings import Settings

T = typing.TypeVar("T")


@dataclass(frozen=True)
class Served:
    """Who answered: the model, whether it was the fallback, and the upstream calls it took."""

    model: str
    fallback: bool
    attempts: int


async def with_fallback(
    attempt: typing.Callable[[str], typing.Awaitable[T]],
    settings: Settings,
    deadline: Deadline,
    breaker: CircuitBreaker,
) -> tuple[T, Served]:
    """Run `attempt(model)` on the primary model with retries, then on the fallback model if the
    primary is unavailable, all before `deadline`.

    "Unavailable" is a transient failure that outlasted the retries, or the time left for them.
    A request the provider rejected goes to no other model: it would be just as wrong there.
    While `breaker` is open the primary has been failing for everyone, so the request goes
    straight to the fallback instead of spending its deadline on retries that would fail too.
    """
    attempts = 0

    async def counted(model: str) -> T:
        nonlocal attempts
        attempts += 1
        if model != settings.primary_model:
            return await attempt(model)
        try:
            value = await attempt(model)
        except Exception as error:
            if is_transient(error):
                breaker.failed()
            raise
        breaker.succeeded()
        return value

    models: tuple[str, ...]
    if breaker.allows_call():
        models = (settings.primary_model, settings.fallback_model)
    else:
        models = (settings.fallback_model,)  # open: the primary is left alone for its cool-down
    last_error: Exception | None = None
    with deadline.enforced():
        for model in models:
            try:
                value = await with_retries(functools.partial(counted, model), settings, deadline)
            except Exception as error:
                if is_transient(error):
                    last_error = error
                    continue
                if isinstance(error, ProviderError):  # 400, 401, 403, 404, 422...
                    raise UpstreamRejected(f"The model refused the request: {error}") from error
                raise  # a bug, not the provider: let it show
            return value, Served(model, model != settings.primary_model, attempts)
    raise UpstreamUnavailable("The models are unavailable right now.") from last_error

"""Retries: which upstream failures are worth another attempt, how long to wait, and the loop.

What counts as transient, and the backoff, follow the official OpenAI and Anthropic SDKs, so the
app behaves as the providers expect their clients to.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
import typing

import anyio
import httpx

from .deadline import Deadline
from .llm import ProviderError
from .settings import Settings

T = typing.TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 409, 429})  # and every 5xx, 529 ("overloaded") included
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
LONGEST_REQUESTED_WAIT = 60.0  # a longer Retry-After is ignored, as the SDKs do
JITTER = 0.25  # each backoff is shrunk by up to this fraction, at random


def is_transient(error: BaseException) -> bool:
    """A failure that may pass: overload, rate limit, outage, timeout, dropped connection.

    A request the provider rejected (400, 401, 403, 404, 422) would be rejected again.
    """
    if isinstance(error, ProviderError):
        status = error.status
        return status is None or status in TRANSIENT_STATUSES or status >= 500
    return isinstance(error, TRANSIENT_ERRORS)


def backoff(retry: int, settings: Settings) -> float:
    """Capped exponential backoff with jitter: clients that failed together do not all come back
    at the same instant."""
    delay = min(settings.retry_base_delay * 2.0**retry, settings.retry_max_delay)
    return delay * (1 - JITTER * random.random())


def requested_wait(error: BaseException) -> float | None:
    """How long the provider asked us to wait (``retry-after-ms``, then ``Retry-After`` in seconds
    or as an HTTP date), if it asked and the wait is short enough to honour."""
    if not isinstance(error, ProviderError):
        return None
    headers = error.headers
    if (milliseconds := _number(headers.get("retry-after-ms"))) is not None:
        wait = milliseconds / 1000
    elif (seconds := _number(headers.get("retry-after"))) is not None:
        wait = seconds
    elif (moment := _http_date(headers.get("retry-after"))) is not None:
        wait = moment - time.time()
    else:
        return None
    return wait if 0 <= wait <= LONGEST_REQUESTED_WAIT else None


async def with_retries(
    attempt: typing.Callable[[], typing.Awaitable[T]], settings: Settings, deadline: Deadline
) -> T:
    """Run `attempt`, and again after each transient failure, at most `max_attempts` times.

    Gives up early, raising the last error, when waiting and trying again would not end before
    the deadline; an attempt is expected to take as long as the one that just failed (a read
    timeout fails slowly, a 503 fast). The caller can then spend what is left on another model.
    """
    for retry in range(settings.max_attempts - 1):
        started = time.monotonic()
        try:
            return await attempt()
        except Exception as error:
            if not is_transient(error):
                raise
            wait = requested_wait(error)
            if wait is None:
                wait = backoff(retry, settings)
            if wait + (time.monotonic() - started) >= deadline.remaining():
                raise
        await anyio.sleep(wait)
    return await attempt()  # the last one: its failure is final


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _http_date(text: str | None) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text) if text is not None else None
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # "-0000": UTC, with nothing said of where the sender is
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()

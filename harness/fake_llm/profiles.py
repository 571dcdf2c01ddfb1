"""Named fault profiles: the provider's default behaviour when no script applies.

A profile draws one `Fault` per request from a generator the plan seeds, so a profile run with
the same seed and the same order of requests behaves the same every time.
"""

from __future__ import annotations

import math
import random
import typing

from . import faults as f
from .faults import Fault

Profile = typing.Callable[[random.Random, str, typing.Sequence[str]], Fault]


def instant(rng: random.Random, model: str, models: typing.Sequence[str]) -> Fault:
    """No delays, no faults: the fastest possible provider, for tests."""
    return f.ok()


def calm(rng: random.Random, model: str, models: typing.Sequence[str]) -> Fault:
    """A healthy provider at a pace a person can watch: 0.3 s to the first token, ~30 tokens/s."""
    return f.ok(first_token=0.3, token_delay=0.03, jitter=0.01)


def realistic(rng: random.Random, model: str, models: typing.Sequence[str]) -> Fault:
    """Long-tailed latency (time to first token: median 0.5 s, P90 about 10x that) and about 4%
    transient failures, as a busy hosted model shows on a normal day."""
    roll = rng.random()
    if roll < 0.015:
        return f.error(429, retry_after=1)
    if roll < 0.025:
        return f.error(503)
    if roll < 0.030:
        return f.error(500)
    if roll < 0.035:
        return f.error(529)
    if roll < 0.040:
        return f.reset()
    # For a log-normal, P90 / median = exp(1.2816 * sigma); sigma = ln(10) / 1.2816 gives 10x.
    first_token = min(rng.lognormvariate(math.log(0.5), math.log(10) / 1.2816), 60.0)
    token_delay = rng.lognormvariate(math.log(0.025), 0.3)
    return f.ok(first_token=first_token, token_delay=token_delay, jitter=token_delay / 2)


def outage(rng: random.Random, model: str, models: typing.Sequence[str]) -> Fault:
    """The first (primary) model answers 503 to everything; the others are calm."""
    if models and model == models[0]:
        return f.error(503, message=f"The model {model} is currently overloaded.")
    return calm(rng, model, models)


PROFILES: dict[str, Profile] = {
    "instant": instant,
    "calm": calm,
    "realistic": realistic,
    "outage": outage,
}

"""Hypothesis examples drawn from the seed alone, whatever else the grading process has loaded.

Since 6.131, Hypothesis mixes into what it draws (about one draw in twenty) constants it finds in
the source of every *local* module loaded: any module outside site-packages and the standard
library. In a grade those are the harness's own modules when it is installed editable, and the
submission's in thread mode. So the near-misses and fault schedules a scenario tried, and the
grade with them, would depend on how faultfirst was installed, on the app mode, and on strings a
candidate put in their code. Within `seed_only()`, that pool is empty: the examples depend on the
scenario's `hypothesis.seed` and Hypothesis's own constants alone.

Hypothesis offers no setting for this, so it swaps the function its provider asks for the pool
(`hypothesis.internal`, not public API). On a Hypothesis without it, it does nothing: there is
no such pool to empty (`tests/test_checks_examples.py` notices if the name moves).
"""

from __future__ import annotations

import contextlib
import typing

from hypothesis.internal.conjecture import providers


@contextlib.contextmanager
def seed_only() -> typing.Iterator[None]:
    """Run Hypothesis tests within with no constants taken from loaded modules' source."""
    original = getattr(providers, "_get_local_constants", None)
    if original is None:
        yield
        return
    empty = providers._local_constants.__class__()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()  # permitted constants, worked out with the pool
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()

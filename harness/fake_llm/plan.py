"""The fault plan: which `Fault` the next request gets.

The order of precedence is the order a test reads best: scripted faults first (oldest script
first, each fault used once), then standing `always` rules (newest first), then the profile.
Scripts and rules can be narrowed to a model and to prompts containing some text.
"""

from __future__ import annotations

import collections
import random
import threading
import typing
from dataclasses import dataclass

from .faults import Fault, FaultError
from .profiles import PROFILES
from .text import rng_for


@dataclass
class Rule:
    faults: collections.deque[Fault]
    model: str | None = None
    prompt_contains: str | None = None

    def matches(self, model: str, prompt: str) -> bool:
        return (self.model is None or self.model == model) and (
            self.prompt_contains is None or self.prompt_contains in prompt
        )


class FaultPlan:
    """Thread-safe: tests write it from their thread while the server reads it from its own."""

    def __init__(self, *, models: typing.Sequence[str], seed: int = 0, profile: str = "instant"):
        self.models = tuple(models)
        self._lock = threading.Lock()
        self.seed = seed
        self.profile = _checked_profile(profile)
        self._scripts: list[Rule] = []
        self._standing: list[Rule] = []
        self._counts: collections.Counter[str] = collections.Counter()

    def script(
        self,
        faults: typing.Iterable[Fault],
        model: str | None = None,
        prompt_contains: str | None = None,
    ) -> None:
        items = collections.deque(_checked_fault(x) for x in faults)
        self._check_model(model)
        with self._lock:
            self._scripts.append(Rule(items, model, prompt_contains))

    def always(
        self, fault: Fault, model: str | None = None, prompt_contains: str | None = None
    ) -> None:
        self._check_model(model)
        with self._lock:
            rule = Rule(collections.deque([_checked_fault(fault)]), model, prompt_contains)
            self._standing.insert(0, rule)

    def use_profile(self, name: str, seed: int | None = None) -> None:
        with self._lock:
            self.profile = _checked_profile(name)
            if seed is not None:
                self.seed = seed

    def clear(self, seed: int | None = None) -> None:
        """Forget scripts, rules and request counts; back to the `instant` profile."""
        with self._lock:
            self._scripts.clear()
            self._standing.clear()
            self._counts.clear()
            self.profile = "instant"
            if seed is not None:
                self.seed = seed

    def remaining(self) -> int:
        """Scripted faults not used yet: a test can assert its script was played out."""
        with self._lock:
            return sum(len(rule.faults) for rule in self._scripts)

    def next_fault(self, model: str, prompt: str) -> tuple[Fault, random.Random]:
        """The fault for this request, and a generator seeded for it (jitter is drawn from it)."""
        with self._lock:
            index = self._counts[model]
            self._counts[model] += 1
            rng = rng_for("request", self.seed, model, index)
            for rule in self._scripts:
                if rule.faults and rule.matches(model, prompt):
                    return rule.faults.popleft(), rng
            for rule in self._standing:
                if rule.matches(model, prompt):
                    return rule.faults[0], rng
            return PROFILES[self.profile](rng, model, self.models), rng

    def _check_model(self, model: str | None) -> None:
        if model is not None and model not in self.models:
            raise FaultError(f"unknown model {model!r}; the fake serves: {', '.join(self.models)}")


def _checked_profile(name: str) -> str:
    if name not in PROFILES:
        raise FaultError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return name


def _checked_fault(value: object) -> Fault:
    if not isinstance(value, Fault):
        raise FaultError(f"expected a fault such as faults.error(503), got {value!r}")
    return value

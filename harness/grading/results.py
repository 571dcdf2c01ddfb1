"""Results: each scenario's status, reason and evidence, and the grade they add up to."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from .. import __version__
from .evidence import Evidence
from .marks import Scenario
from .sanitize import clean
from .tasks import TASKS


NO_FILES = f"sha256:{hashlib.sha256().hexdigest()}"  # the digest of no files at all


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed out"  # the scenario's time limit stopped the app
    APP_DID_NOT_START = "app did not start"  # ungradable: the reason says why
    APP_CRASHED = "app crashed"  # its process ended during the scenario (or broke a limit)
    NOT_RUN = "not run"  # the run was stopped first (its time limit passed, or Ctrl-C)
    HARNESS_ERROR = "harness error"  # our bug, never counted against the candidate


@dataclass
class ScenarioResult:
    scenario: Scenario
    status: Status
    reason: str = ""  # for people: what the app did wrong, or why it could not be graded
    evidence: Evidence = field(default_factory=Evidence)
    duration: float = 0.0

    def __post_init__(self) -> None:
        self.reason = clean(self.reason)  # it quotes what the app said or printed
        # To the millisecond, as the JSON keeps it: a report made again from the JSON
        # (`harness.grading.saved`) then draws exactly what the run's own report drew.
        self.duration = round(self.duration, 3)

    @property
    def earned(self) -> int:
        return self.scenario.points if self.status is Status.PASSED else 0

    @property
    def counted(self) -> bool:
        """Whether its points count towards what was possible (a harness error's do not)."""
        return self.status is not Status.HARNESS_ERROR


@dataclass(frozen=True)
class TaskScore:
    task: str
    title: str
    earned: int
    possible: int
    bonus_earned: int
    bonus_possible: int


@dataclass(frozen=True)
class Isolation:
    """How the app was kept from the grader (`harness.hosting.isolation`), as the reports say it."""

    level: str = "none"  # uid+namespaces (root), namespaces (bubblewrap), uid (root), or none
    network: str = "shared"  # own: the grading run had a network namespace of its own
    note: str = ""  # at level none: why, and what to do

    def summary(self) -> str:
        """One line for people."""
        if self.level == "none":
            return f"isolation: none — {self.note}" if self.note else "isolation: none"
        if self.level == "uid":
            return f"isolation: uid — the app ran as a user of its own; {self.note}"
        who = "as a user of its own" if self.level == "uid+namespaces" else "in a bubblewrap box"
        seen = "its own files and processes"
        seen += " and the fake provider" if self.network == "own" else "; the machine's network"
        return f"isolation: {self.level} — the app ran {who}, seeing only {seen}"


@dataclass
class Grade:
    submission: str
    tasks: tuple[str, ...]
    seed: int
    app_mode: str
    results: list[ScenarioResult] = field(default_factory=list)
    duration: float = 0.0  # seconds, to the millisecond (as the JSON keeps it)
    digest: str = NO_FILES  # of the files graded, so a report names exactly what it graded
    files: int = 0
    isolation: Isolation = field(default_factory=Isolation)
    harness_version: str = __version__  # the faultfirst that graded: reports name it
    source: str | None = None  # what `faultfirst grade` was given; None under pytest
    wall_time: float | None = None  # what `faultfirst grade` took over it; None under pytest

    def add(self, result: ScenarioResult) -> None:
        """Record a result. Of the cases of one parametrized scenario, the first that failed
        stands for them all; a harness error only while no case has failed on its own."""
        for index, known in enumerate(self.results):
            if known.scenario.id == result.scenario.id:
                if known.status is Status.PASSED or (
                    known.status is Status.HARNESS_ERROR and result.status is not Status.PASSED
                ):
                    self.results[index] = result
                return
        self.results.append(result)

    def task_scores(self) -> list[TaskScore]:
        scores = []
        for task in self.tasks:
            mine = [r for r in self.results if r.scenario.task == task and r.counted]
            main = [r for r in mine if not r.scenario.bonus]
            bonus = [r for r in mine if r.scenario.bonus]
            scores.append(
                TaskScore(
                    task=task,
                    title=TASKS[task],
                    earned=sum(r.earned for r in main),
                    possible=sum(r.scenario.points for r in main),
                    bonus_earned=sum(r.earned for r in bonus),
                    bonus_possible=sum(r.scenario.points for r in bonus),
                )
            )
        return scores

    @property
    def earned(self) -> int:
        return sum(score.earned for score in self.task_scores())

    @property
    def possible(self) -> int:
        return sum(score.possible for score in self.task_scores())

    @property
    def percentage(self) -> float:
        return 100.0 * self.earned / self.possible if self.possible else 0.0

    @property
    def status(self) -> str:
        """``graded``; ``ungradable`` when the app never started (the reasons say why);
        ``incomplete`` when the run was stopped before every scenario ran."""
        counted = [r for r in self.results if r.counted]
        if counted and all(r.status is Status.APP_DID_NOT_START for r in counted):
            return "ungradable"
        if any(r.status is Status.NOT_RUN for r in counted):
            return "incomplete"
        return "graded"

    @property
    def tokens_billed(self) -> int:
        return sum(r.evidence.tokens_billed for r in self.results)

    @property
    def tokens_unread(self) -> int:
        return sum(r.evidence.tokens_unread for r in self.results)

    def failures(self) -> list[ScenarioResult]:
        return [r for r in self.results if r.status is not Status.PASSED]

"""The ``scenario`` mark: what a graded scenario is worth and what it tells the candidate.

::

    @pytest.mark.scenario(
        task="retries",
        points=2,
        title="Retry-After is honoured",
        hint="When a 429 says Retry-After: 0.3, wait that long before the next attempt.",
        checks=["retries.retry_after"],
    )
    async def test_retry_after_is_honoured(client, fake_llm): ...

`checks` names the requirements of the brief the scenario checks (`requirements.toml`), so that
every requirement is seen to be checked somewhere. `needs` names other tasks the scenario also
relies on (``needs=["retries"]`` for a batch question that is retried): it is graded only when
they are graded too, since a candidate given the jobs task alone owes no retries.

The plugin reads every mark at collection, so a typo fails the run at once, naming the test,
instead of quietly grading a scenario as worth nothing.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

if typing.TYPE_CHECKING:  # read from pytest's items; a saved grade's scenarios need no pytest
    import pytest

from .requirements import requirements
from .tasks import TASKS

MARK = "scenario"
SETTINGS_MARK = "app_settings"


class MarkError(ValueError):
    """A scenario mark that cannot be graded; the message names the test."""


@dataclass(frozen=True)
class Scenario:
    """What the ``scenario`` mark says about one test."""

    id: str  # the test's name without ``test_``: stable, it keys expectations and reports
    task: str
    points: int
    title: str
    hint: str
    bonus: bool = False  # earned on top of the task's points; never needed for 100%
    hidden: bool = False  # from scenarios/hidden/, which candidates never see
    checks: tuple[str, ...] = ()  # the ids of the brief's requirements it checks
    needs: tuple[str, ...] = ()  # other tasks it relies on: graded only along with them


def scenario_of(item: pytest.Item) -> Scenario | None:
    """The item's scenario, None if it has no ``scenario`` mark, `MarkError` if it is wrong."""
    mark = item.get_closest_marker(MARK)
    if mark is None:
        return None
    where = item.nodeid
    if mark.args:
        raise MarkError(f"{where}: write the scenario mark with keywords (task=..., points=...)")
    fields = dict(mark.kwargs)
    unknown = set(fields) - {"task", "points", "title", "hint", "bonus", "checks", "needs"}
    if unknown:
        raise MarkError(f"{where}: the scenario mark has unknown keywords {sorted(unknown)}")
    for name in ("task", "points", "title", "hint", "checks"):
        if name not in fields:
            raise MarkError(f"{where}: the scenario mark is missing {name}=")
    task, points = fields["task"], fields["points"]
    if task not in TASKS:
        raise MarkError(f"{where}: unknown task {task!r} (tasks: {', '.join(TASKS)})")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise MarkError(f"{where}: points= must be a whole number of at least 1, not {points!r}")
    for name in ("title", "hint"):
        if not isinstance(fields[name], str) or not fields[name].strip():
            raise MarkError(f"{where}: {name}= must be a non-empty string")
    checks = _checks(fields["checks"], where)
    needs = fields.get("needs", ())
    needs = (needs,) if isinstance(needs, str) else tuple(needs)
    if not all(need in TASKS and need != task for need in needs):
        raise MarkError(f"{where}: needs= lists other tasks, from: {', '.join(TASKS)}")
    name = getattr(item, "originalname", item.name)
    return Scenario(
        id=name.removeprefix("test_"),
        task=task,
        points=points,
        title=fields["title"],
        hint=fields["hint"],
        bonus=bool(fields.get("bonus", False)),
        hidden="hidden" in item.path.parts,
        checks=checks,
        needs=needs,
    )


def _checks(value: typing.Any, where: str) -> tuple[str, ...]:
    """The requirement ids of a ``checks=`` keyword, after checking each is in the table."""
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(i, str) for i in ids):
        raise MarkError(f"{where}: checks= must list the ids of the requirements it checks")
    unknown = [i for i in ids if i not in requirements()]
    if unknown:
        raise MarkError(
            f"{where}: checks= names requirements that are not in harness/grading/"
            f"requirements.toml: {', '.join(unknown)}"
        )
    return tuple(ids)


def settings_of(item: pytest.Item, known: typing.Iterable[str]) -> dict[str, str]:
    """The app settings a scenario overrides with ``@pytest.mark.app_settings(NAME="value")``."""
    mark = item.get_closest_marker(SETTINGS_MARK)
    if mark is None:
        return {}
    unknown = set(mark.kwargs) - set(known)
    if unknown or mark.args:
        raise MarkError(
            f"{item.nodeid}: app_settings takes NAME=value for these settings only: "
            f"{', '.join(known)}"
        )
    return {name: str(value) for name, value in mark.kwargs.items()}

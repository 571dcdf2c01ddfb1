"""The brief's requirements, with the scenarios that check each and the mutants that break it: the
data behind ``docs/coverage.md`` and ``tests/test_requirements.py``.

    python tests/requirement_table.py    # rewrites docs/coverage.md

A requirement is *caught* when each mutant breaking it fails a scenario that checks it: the
mutant's expected failures, which the calibration proves on every run of the suite.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # when run as a script

from harness.grading.requirements import Requirement, context, requirements  # noqa: E402
from mutants import MUTANTS, Mutant  # noqa: E402

BRIEF = ROOT / "exercise_app" / "BRIEF.md"
SCENARIOS = ROOT / "scenarios"
DOCUMENT = ROOT / "docs" / "coverage.md"


@dataclass(frozen=True)
class ScenarioInfo:
    id: str
    task: str
    hidden: bool
    checks: tuple[str, ...]
    needs: tuple[str, ...]
    settings: tuple[tuple[str, str], ...]  # its app_settings mark, if it has one


@dataclass
class Row:
    requirement: Requirement
    scenarios: list[ScenarioInfo] = field(default_factory=list)
    mutants: list[Mutant] = field(default_factory=list)

    def caught_by(self, mutant: Mutant) -> list[str]:
        """The scenarios checking this requirement that `mutant` is expected to fail."""
        return sorted(s.id for s in self.scenarios if s.id in mutant.expected_failures)


@functools.cache
def scenarios() -> dict[str, ScenarioInfo]:
    """Every graded scenario, public and hidden, by id, read from its mark."""
    found: dict[str, ScenarioInfo] = {}
    for path in sorted(
        SCENARIOS.rglob("test_*.py"), key=lambda path: ("hidden" in path.parts, path)
    ):
        spec = importlib.util.spec_from_file_location(f"_scenarios_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, test in vars(module).items():
            marks = [m for m in getattr(test, "pytestmark", []) if m.name == "scenario"]
            if name.startswith("test_") and marks:
                fields = marks[0].kwargs
                overrides = [m for m in test.pytestmark if m.name == "app_settings"]
                settings = tuple(overrides[0].kwargs.items()) if overrides else ()
                checks, needs = fields["checks"], fields.get("needs", ())
                found[name.removeprefix("test_")] = ScenarioInfo(
                    id=name.removeprefix("test_"),
                    task=fields["task"],
                    hidden="hidden" in path.parts,
                    checks=(checks,) if isinstance(checks, str) else tuple(checks),
                    needs=(needs,) if isinstance(needs, str) else tuple(needs),
                    settings=settings,
                )
    return found


def rows() -> list[Row]:
    """A row per requirement, in the table's order."""
    table = {id: Row(requirement) for id, requirement in requirements().items()}
    for scenario in scenarios().values():
        for id in scenario.checks:
            table[id].scenarios.append(scenario)
    for mutant in MUTANTS:
        for id in mutant.breaks:
            table[id].mutants.append(mutant)
    return list(table.values())


def brief_sentences() -> list[str]:
    """The sentences of the brief's tasks ("What we would like"), whitespace made single."""
    text = BRIEF.read_text(encoding="utf-8")
    section = text.split("## What we would like", 1)[1].split("## Running it", 1)[0]
    section = re.sub(r"```json\n.*?```", " ", section, flags=re.S)  # the metadata's example
    prose = " ".join(line for line in section.splitlines() if not line.startswith("#"))
    return re.split(r'(?<=[.!?])"?\s+(?=["A-Z`(])', flat(prose))


def flat(text: str) -> str:
    return " ".join(text.split())


def quotes() -> list[str]:
    """Every quote of the brief in the table: the requirements', then the context's."""
    return [r.brief for r in requirements().values()] + [c.brief for c in context()]


def markdown() -> str:
    """docs/coverage.md."""
    table = rows()
    found = scenarios()
    from_brief = [m for m in MUTANTS if m.from_brief]
    checked = [row for row in table if row.scenarios]
    broken = [row for row in table if row.mutants]
    caught = [row for row in broken if all(row.caught_by(m) for m in row.mutants)]
    blind = [m for m in MUTANTS if m.uncaught]
    lines = [
        "# Coverage: the brief's requirements, their scenarios and their mutants",
        "",
        "Made by `python tests/requirement_table.py` from `harness/grading/requirements.toml`, the",
        "scenarios' marks (`checks=`) and the mutants (`breaks=`); `tests/test_requirements.py`",
        "fails when it is out of date. A mutant is *caught* by the scenarios checking its",
        "requirement that it fails; `tests/test_calibration.py` proves those failures on every run.",
        "",
        f"- **{len(table)} requirements**: {len(checked)} checked by a scenario, {len(broken)} "
        f"broken by a mutant, {len(caught)} with every mutant caught by a scenario checking it "
        "(a mutant breaking several may be caught by another's).",
        f"- **{len(found)} scenarios** ({sum(not s.hidden for s in found.values())} public, "
        f"{sum(s.hidden for s in found.values())} hidden).",
        f"- **{len(MUTANTS)} mutants**: {len(from_brief)} written from the brief's sentence "
        f"before looking at the scenarios (✎ below), {len(MUTANTS) - len(from_brief)} written "
        f"beside them; {len(MUTANTS) - len(blind)} caught, and {len(blind)} known blind "
        f"spot{'s' if len(blind) != 1 else ''}, which no scenario catches, for the reason given.",
        "",
    ]
    for area, grouped in itertools.groupby(table, key=lambda row: row.requirement.area):
        lines += [
            f"## {area}",
            "",
            "| requirement | scenarios | mutants → caught by |",
            "| :--- | :--- | :--- |",
            *(_row(row) for row in grouped),
            "",
        ]
    return "\n".join(lines)


def _row(row: Row) -> str:
    requirement = row.requirement
    where = f" *({', '.join(requirement.where)})*" if requirement.where else ""
    said = f"**`{requirement.id}`** {requirement.says}{where}"
    checks = "<br>".join(f"`{s.id}`" + (" *(hidden)*" if s.hidden else "") for s in row.scenarios)
    breaks = "<br>".join(_mutant_cell(row, mutant) for mutant in row.mutants)
    return f"| {said} | {checks or '**none**'} | {breaks or '**none**'} |"


def _mutant_cell(row: Row, mutant: Mutant) -> str:
    caught = row.caught_by(mutant)
    mark = "✎ " if mutant.from_brief else ""
    if mutant.uncaught:
        return f"{mark}`{mutant.name}` → **not caught**: {mutant.uncaught}"
    if caught:
        return f"{mark}`{mutant.name}` → {', '.join(caught)}"
    # A mutant that breaks several requirements may be caught by another one's scenarios.
    return f"{mark}`{mutant.name}` → *by another requirement's:* " + ", ".join(
        sorted(mutant.expected_failures)
    )


if __name__ == "__main__":
    DOCUMENT.write_text(markdown() + "\n", encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")

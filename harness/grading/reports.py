"""Reports: the grade as versioned JSON, and as Markdown for a pull request or a CI summary.

The JSON's shape is published as ``grade.schema.json`` next to this module and explained in
``docs/reports.md``. `SCHEMA_VERSION` goes up only when a change could break a reader of the old
shape (a field removed, renamed, or changing its type or meaning, a new status); a new field
keeps it. The schema is strict (no property it does not name), so a field added to `Scenario`,
`Evidence` or `Attempt` without a schema update fails our tests instead of slipping out unnoticed.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import re
import typing
from pathlib import Path

from .evidence import timeline
from .results import Grade, ScenarioResult, Status, TaskScore
from .sanitize import markdown
from .tasks import TASKS

SCHEMA = "faultfirst-grade"
SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).with_name("grade.schema.json")
# What `faultfirst grade --json` writes for a submission it could not grade at all.
NOT_GRADED = "faultfirst-not-graded"
NOT_GRADED_VERSION = 1

MARKDOWN_LIMIT = 65_536  # characters in a GitHub comment; a step summary may hold more
CELL_LIMIT = 1_500  # characters of a reason or hint in a table cell; the JSON has them whole
_NOTES_BUDGET = 600  # room kept for the notes that say what was left out

Json = dict[str, typing.Any]


# JSON


def grade_json(grade: Grade, *, harness_version: str | None = None, started_at: float) -> Json:
    """The grade as JSON data (see ``grade.schema.json``); `started_at` is the wall clock time
    (``time.time()``) the run started; `harness_version` (default: the grade's own) names the
    faultfirst that graded."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "harness_version": harness_version or grade.harness_version,
        "submission": grade.submission,
        "source": grade.source,
        "files": {"digest": grade.digest, "count": grade.files},
        "seed": grade.seed,
        "app_mode": grade.app_mode,
        "isolation": dataclasses.asdict(grade.isolation),
        "started_at": _iso_utc(started_at),
        "duration": round(grade.duration, 3),
        "wall_time": None if grade.wall_time is None else round(grade.wall_time, 3),
        "status": grade.status,
        "score": {
            "earned": grade.earned,
            "possible": grade.possible,
            "percentage": round(grade.percentage, 2),
        },
        "tokens": {"billed": grade.tokens_billed, "unread": grade.tokens_unread},
        "tasks": [_task_json(score) for score in grade.task_scores()],
        "scenarios": [_scenario_json(result) for result in grade.results],
    }


def write_json(
    path: str | Path, grade: Grade, *, harness_version: str | None = None, started_at: float
) -> None:
    """Write `grade_json` to `path` (UTF-8, indented), creating its folder."""
    _write(Path(path), json_text(grade, harness_version=harness_version, started_at=started_at))


def json_text(grade: Grade, *, harness_version: str | None = None, started_at: float) -> str:
    """`grade_json` as the text of the file."""
    return dumps(grade_json(grade, harness_version=harness_version, started_at=started_at))


def dumps(data: Json) -> str:
    """JSON data as the text of a grade's file: indented, UTF-8 as it is, a newline at the end."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def stamped(text: str, *, source: str, wall_time: float) -> tuple[str, Json]:
    """A grade's JSON `text` (and its data) with what only `faultfirst grade` knows filled in:
    the `source` it was given and the `wall_time` it took, to the millisecond."""
    data: Json = json.loads(text)
    data["source"], data["wall_time"] = source, round(wall_time, 3)
    return dumps(data), data


def not_graded_json(
    *, submission: str, source: str, reason: str, wall_time: float, harness_version: str
) -> str:
    """The record `faultfirst grade --json` writes of a submission it could not grade at all (an
    archive it cannot read, dependencies it cannot install, a grading run that broke): no grade,
    and why. A table made later from the files a batch wrote (`faultfirst table`) keeps its row,
    as the batch's own table does, instead of leaving the submission out."""
    record = {
        "schema": NOT_GRADED,
        "schema_version": NOT_GRADED_VERSION,
        "harness_version": harness_version,
        "submission": submission,
        "source": source,
        "status": "not graded",
        "reason": reason,
        "wall_time": round(wall_time, 3),
    }
    return dumps(record)


def load_schema() -> Json:
    """The published JSON Schema of `grade_json`'s output."""
    schema: Json = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _iso_utc(moment: float) -> str:
    when = datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _task_json(score: TaskScore) -> Json:
    data = dataclasses.asdict(score)
    return {"id": data.pop("task"), **data}


def _scenario_json(result: ScenarioResult) -> Json:
    scenario = dataclasses.asdict(result.scenario)
    return {
        **scenario,
        "checks": list(scenario["checks"]),
        "needs": list(scenario["needs"]),
        "earned": result.earned,
        "status": result.status.value,
        "reason": result.reason,
        "duration": round(result.duration, 3),
        "evidence": dataclasses.asdict(result.evidence),
    }


# Markdown


def grade_markdown(grade: Grade, *, limit: int = MARKDOWN_LIMIT) -> str:
    """The grade as GitHub-flavoured Markdown, for a PR comment or ``$GITHUB_STEP_SUMMARY``:
    the total, the tasks, a table of what to fix, each failure's evidence, what passed.

    It stays within `limit` characters: when everything does not fit, evidence goes first, then
    the list of what passed (a count stays), then the last rows of what to fix; the text says
    what was left out.
    """
    failures = grade.failures()
    passed = [result for result in grade.results if result.status is Status.PASSED]
    head, fix_head = _head(grade), _fix_head(failures)
    rows = [_failure_row(result) for result in failures]
    passed_full, passed_short = _passed_list(passed), _passed_count(passed)

    room = limit - len(head) - len(fix_head) - _NOTES_BUDGET
    kept_rows = _fit(rows, room, in_order=True)
    room -= sum(len(row) for row in kept_rows)
    listed = not passed or len(passed_full) <= room
    room -= len(passed_full if listed else passed_short)
    blocks = [_evidence_block(r) for r in failures[: len(kept_rows)] if _has_evidence(r)]
    kept_blocks = _fit(blocks, room)

    notes = []
    if len(kept_rows) < len(rows):
        notes.append(f"{len(rows) - len(kept_rows)} more scenarios that did not pass")
    if len(kept_blocks) < len(blocks):
        notes.append(f"the evidence of {len(blocks) - len(kept_blocks)} scenarios")
    if not listed:
        notes.append("the list of scenarios that passed")
    note = (
        f"\n_Left out to fit GitHub's limit of {limit:,} characters: {'; '.join(notes)}. "
        "The JSON report (`--json`) has everything._\n"
        if notes
        else ""
    )
    text = head + fix_head + "".join(kept_rows) + note + "".join(kept_blocks)
    text += passed_full if listed else passed_short
    if len(text) > limit:  # only a tiny `limit` gets here: not even the head fits
        text = text[: max(limit - 1, 0)] + "…"
    return text


def write_markdown(path: str | Path, grade: Grade) -> None:
    """Write `grade_markdown` to `path`, replacing it, creating its folder. GitHub's
    ``$GITHUB_STEP_SUMMARY`` collects what every step appends: the command line appends there
    itself rather than calling this."""
    _write(Path(path), grade_markdown(grade))


def _head(grade: Grade) -> str:
    scores = grade.task_scores()
    lines = [
        f"## faultfirst: {grade.earned} / {grade.possible} points ({grade.percentage:.0f}%)",
        "",
        f"Submission {inline_markdown(grade.submission)} · seed {grade.seed} · "
        f"app mode {inline_markdown(grade.app_mode)} · {grade.duration:.1f}s",
        "",
        inline_markdown(grade.isolation.summary()),
        "",
    ]
    if grade.status == "ungradable":
        lines += ["**The app could not be graded: it never started.** The reasons below say why."]
        lines += [""]
    if grade.status == "incomplete":
        lines += ["**The run was stopped before every scenario ran.** Those score nothing."]
        lines += [""]
    with_bonus = any(score.bonus_possible for score in scores)
    lines += [
        "| Task | Points |" + (" Bonus |" if with_bonus else ""),
        "| :--- | ---: |" + (" ---: |" if with_bonus else ""),
    ]
    for score in scores:
        bonus = f" {_bonus(score.bonus_earned, score.bonus_possible)} |" if with_bonus else ""
        lines.append(f"| {_cell(score.title)} | {score.earned} / {score.possible} |{bonus}")
    bonus_total = ""
    if with_bonus:
        earned = sum(score.bonus_earned for score in scores)
        possible = sum(score.bonus_possible for score in scores)
        bonus_total = f" {_bonus(earned, possible)} |"
    lines += [
        f"| **Total** | **{grade.earned} / {grade.possible}** |{bonus_total}",
        "",
        f"Tokens billed by the fake provider: {grade.tokens_billed}, "
        f"read by nobody: {grade.tokens_unread}.",
        "",
    ]
    return "\n".join(lines) + "\n"


def _bonus(earned: int, possible: int) -> str:
    return f"+{earned} / {possible}" if possible else ""


def _fix_head(failures: list[ScenarioResult]) -> str:
    if not failures:
        return "### What to fix\n\nNothing: every scenario passed.\n"
    return (
        f"### What to fix ({len(failures)})\n\n"
        "| Scenario | Task | Result | Why | Hint |\n"
        "| :--- | :--- | :--- | :--- | :--- |\n"
    )


def _failure_row(result: ScenarioResult) -> str:
    scenario = result.scenario
    if result.status is Status.HARNESS_ERROR:
        worth = "not counted"
        hint = "A bug in the grader, not in your app: it costs no points."
    else:
        worth = f"0/{scenario.points}" + (" bonus" if scenario.bonus else "")
        hint = scenario.hint
    cells = [
        _cell(scenario.title) + (" _(hidden)_" if scenario.hidden else ""),
        _cell(_task_title(scenario.task)),
        _cell(f"{result.status.value}, {worth}"),
        _cell(result.reason or "(no reason given)"),
        _cell(hint),
    ]
    return "| " + " | ".join(cells) + " |\n"


def _has_evidence(result: ScenarioResult) -> bool:
    return bool(result.evidence.attempts or result.evidence.user_left)


def _evidence_block(result: ScenarioResult) -> str:
    body = "\n".join(timeline(result.evidence))
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    title = html.escape(result.scenario.title)
    return (
        f"\n<details><summary>✗ {title}: what the app did</summary>\n\n"
        f"{fence}text\n{body}\n{fence}\n\n</details>\n"
    )


def _passed_list(passed: list[ScenarioResult]) -> str:
    if not passed:
        return ""
    items = []
    for result in passed:
        scenario = result.scenario
        worth = f"{scenario.points}/{scenario.points}" + (" bonus" if scenario.bonus else "")
        hidden = ", hidden" if scenario.hidden else ""
        task = inline_markdown(_task_title(scenario.task))
        items.append(f"- ✓ {inline_markdown(scenario.title)} ({task}, {worth}{hidden})")
    return (
        f"\n<details><summary>Passed: {len(passed)} scenarios</summary>\n\n"
        + "\n".join(items)
        + "\n\n</details>\n"
    )


def _passed_count(passed: list[ScenarioResult]) -> str:
    return f"\n{len(passed)} scenarios passed.\n" if passed else ""


def _task_title(task: str) -> str:
    return TASKS.get(task, task)


def _fit(parts: list[str], room: int, *, in_order: bool = False) -> list[str]:
    """The parts that fit in `room` characters: the first ones, or (not `in_order`) every one
    that still fits, skipping those too long."""
    kept = []
    for part in parts:
        if len(part) <= room:
            kept.append(part)
            room -= len(part)
        elif in_order:
            break
    return kept


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def inline_markdown(text: str) -> str:
    """`text` shown as it is, on one line, wherever Markdown formats text, pinging nobody and
    linking nowhere (`sanitize.markdown`)."""
    return markdown(_MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split())))


def _cell(text: str) -> str:
    """`text` in a table cell: escaped, its lines joined by ``<br>``, cut at `CELL_LIMIT`."""
    if len(text) > CELL_LIMIT:
        text = text[: CELL_LIMIT - 1] + "…"
    lines = [inline_markdown(line) for line in text.splitlines()]
    return "<br>".join(line for line in lines if line)


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

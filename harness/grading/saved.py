"""A saved grade read back: the JSON report (``grade.schema.json``) made a `Grade` again.

Every report (`scoreboard`, `reports`, `html_report`, `gradescope`, `junit`) is drawn from a
`Grade`. `faultfirst report` and `faultfirst table` rebuild that model from a saved JSON rather
than render from the JSON, so a report made later is the report the run made, by construction:
the JSON keeps every field the renderers read, to the precision they show it.

A saved grade may come from anywhere, a candidate's CI say, so it is read as untrusted: each
field must have its documented type, every text is cleaned as the app's texts are
(`sanitize`), and its scores must add up from its scenarios, or it is refused with one line.
"""

from __future__ import annotations

import datetime
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .evidence import Attempt, Evidence
from .marks import Scenario
from .reports import NOT_GRADED, NOT_GRADED_VERSION, SCHEMA, SCHEMA_VERSION, grade_json
from .results import Grade, Isolation, ScenarioResult, Status
from .sanitize import clean, one_line
from .tasks import TASKS

Json = dict[str, typing.Any]

ISOLATION_LEVELS = ("uid+namespaces", "namespaces", "uid", "none")  # as grade.schema.json has them

# harness.commands.comparison's, named here to say what it is
COMPARISON_SCHEMA = "faultfirst-comparison"
TEXT_LIMIT = 10_000  # characters of any text: far above ours and a reason's, far below a flood


class NotAGrade(ValueError):
    """The file is no grade this faultfirst can read; the message says why in one line."""


@dataclass(frozen=True)
class SavedGrade:
    grade: Grade
    started_at: float  # the wall clock time the run started, to the second as the JSON keeps it
    data: Json  # the document as it was read


@dataclass(frozen=True)
class NotGraded:
    """A submission `faultfirst grade` could not grade at all, as its JSON record says
    (`reports.not_graded_json`): a row of a table, with no grade."""

    submission: str
    source: str
    reason: str
    wall_time: float


def load(path: Path) -> SavedGrade:
    """The grade saved in `path`; `NotAGrade` naming the file when it cannot be read as one."""
    row = load_row(path)
    if isinstance(row, NotGraded):
        raise NotAGrade(
            f"{path} holds no grade: {row.submission} was not graded ({row.reason}), so there "
            "is no report to make"
        )
    return row


def load_row(path: Path) -> SavedGrade | NotGraded:
    """What `path` holds for a table: a grade, or the record of a submission that has none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_not_json)
    except OSError as error:
        raise NotAGrade(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise NotAGrade(f"{path} is not a faultfirst grade: it is not UTF-8 text") from None
    except ValueError:
        raise NotAGrade(f"{path} is not a faultfirst grade: it is not JSON") from None
    try:
        if isinstance(data, dict) and data.get("schema") == NOT_GRADED:
            return not_graded_from_json(data)
        return from_json(data)
    except NotAGrade as error:
        raise NotAGrade(f"{path}{error}") from None


def not_graded_from_json(data: Json) -> NotGraded:
    """The record in `data`, read as untrusted as a grade is."""
    if data.get("schema_version") != NOT_GRADED_VERSION:
        version = one_line(str(data.get("schema_version")), 20)
        raise NotAGrade(
            f" is a version {version} record of a submission not graded; this faultfirst "
            f"({__version__}) reads version {NOT_GRADED_VERSION}"
        )
    record = _Object(data, "")
    return NotGraded(
        submission=record.text("submission"),
        source=record.text("source"),
        reason=one_line(record.text("reason")),
        wall_time=record.number("wall_time"),
    )


def from_json(data: object) -> SavedGrade:
    """The grade in `data`, a parsed JSON report. `NotAGrade`'s message starts with what
    follows a file's name (`` is not...``, ``: ...``), for `load` to put the name first."""
    _check_kind(data)
    document = _Object(typing.cast(Json, data), "")
    isolation = document.object("isolation")
    files = document.object("files")
    grade = Grade(
        submission=document.text("submission"),
        tasks=tuple(_task(task) for task in document.objects("tasks")),
        seed=document.integer("seed"),
        app_mode=document.text("app_mode"),
        duration=document.number("duration"),
        digest=files.text("digest"),
        files=files.integer("count"),
        isolation=Isolation(
            level=isolation.choice("level", ISOLATION_LEVELS),
            network=isolation.choice("network", ("own", "shared")),
            note=isolation.text("note"),
        ),
        harness_version=document.text("harness_version"),
        source=document.optional_text("source"),
        wall_time=document.optional_number("wall_time"),
    )
    for scenario in document.objects("scenarios"):
        grade.results.append(_result(scenario))
    _check_sums(grade, typing.cast(Json, data))
    return SavedGrade(grade, _started_at(document.text("started_at")), typing.cast(Json, data))


def _check_kind(data: object) -> None:
    if not isinstance(data, dict):
        raise NotAGrade(" is not a faultfirst grade: it holds no JSON object")
    schema = data.get("schema")
    if schema == COMPARISON_SCHEMA:
        raise NotAGrade(" is a comparison table, not a grade: give the grades it was made from")
    if schema != SCHEMA:
        raise NotAGrade(
            ' is not a faultfirst grade (no "schema": "faultfirst-grade"): give a JSON that '
            "`faultfirst grade --json` or pytest's `--faultfirst-json` wrote"
        )
    version = data.get("schema_version")
    if version == SCHEMA_VERSION:
        return
    if version is None:
        raise NotAGrade(" is not a faultfirst grade: it has no schema_version")
    written = data.get("harness_version")
    by = f", written by faultfirst {one_line(str(written), 40)}" if written else ""
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise NotAGrade(
            f" is a version {version} grade{by}; this faultfirst ({__version__}) reads version "
            f"{SCHEMA_VERSION}: upgrade faultfirst to read it"
        )
    raise NotAGrade(
        f" is a version {one_line(str(version), 20)} grade{by}; this faultfirst ({__version__}) "
        f"reads version {SCHEMA_VERSION} only: grade the submission again"
    )


def _task(task: _Object) -> str:
    return task.choice("id", TASKS)


def _result(scenario: _Object) -> ScenarioResult:
    status = scenario.choice("status", [status.value for status in Status])
    task = scenario.choice("task", TASKS)
    evidence = scenario.object("evidence")
    return ScenarioResult(
        Scenario(
            id=scenario.text("id"),
            task=task,
            points=scenario.integer("points"),
            title=scenario.text("title"),
            hint=scenario.text("hint"),
            bonus=scenario.boolean("bonus"),
            hidden=scenario.boolean("hidden"),
            checks=tuple(scenario.texts("checks")),
            needs=tuple(scenario.texts("needs")),
        ),
        Status(status),
        scenario.text("reason"),
        Evidence(
            attempts=[_attempt(attempt) for attempt in evidence.objects("attempts")],
            user_left=evidence.numbers("user_left"),
            tokens_billed=evidence.integer("tokens_billed"),
            tokens_unread=evidence.integer("tokens_unread"),
        ),
        duration=scenario.number("duration"),
    )


def _attempt(attempt: _Object) -> Attempt:
    return Attempt(
        number=attempt.integer("number"),
        model=attempt.text("model"),
        stream=attempt.boolean("stream"),
        fault=attempt.text("fault"),
        status=attempt.optional_integer("status"),
        outcome=attempt.text("outcome"),
        at=attempt.number("at"),
        gap=attempt.optional_number("gap"),
        first_token=attempt.optional_number("first_token"),
        ended=attempt.optional_number("ended"),
        tokens=attempt.integer("tokens"),
        hung_up=attempt.optional_number("hung_up"),
    )


def _check_sums(grade: Grade, data: Json) -> None:
    """Refuse a grade whose scores do not follow from its scenarios: it was changed by hand,
    and a report made from it would show one score in its total and another in its rows."""
    made = grade_json(grade, started_at=0.0)
    for name in ("status", "score", "tokens", "tasks"):
        if data.get(name) != made[name]:
            raise NotAGrade(
                f": its {name} does not follow from its scenarios, so it was changed after "
                "grading; grade the submission again"
            )


def _started_at(text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise NotAGrade(f": started_at: {text!r} is not a time") from None
    if moment.tzinfo is None:
        raise NotAGrade(f": started_at: {text!r} has no time zone")
    return moment.timestamp()


class _Object:
    """One JSON object of the document, read field by field, each checked for its type. `where`
    says where it is, for the message (``scenarios[3].``)."""

    def __init__(self, data: Json, where: str) -> None:
        self.data, self.where = data, where

    def text(self, name: str) -> str:
        """A string, without escape sequences or other control characters: the file may come
        from anybody, and its texts reach the terminal."""
        return clean(self._get(name, str, "a string"), TEXT_LIMIT)

    def optional_text(self, name: str) -> str | None:
        return None if self._absent(name) else self.text(name)

    def texts(self, name: str) -> list[str]:
        return [clean(item, TEXT_LIMIT) for item in self._items(name, str, "a string")]

    def choice(self, name: str, choices: typing.Collection[str]) -> str:
        value = self.text(name)
        if value not in choices:
            raise NotAGrade(f": {self.where}{name}: {value!r} is none of {', '.join(choices)}")
        return value

    def integer(self, name: str) -> int:
        return typing.cast(int, self._get(name, int, "a whole number"))

    def optional_integer(self, name: str) -> int | None:
        return None if self._absent(name) else self.integer(name)

    def number(self, name: str) -> float:
        return float(self._get(name, (int, float), "a number"))

    def optional_number(self, name: str) -> float | None:
        return None if self._absent(name) else self.number(name)

    def numbers(self, name: str) -> list[float]:
        return [float(item) for item in self._items(name, (int, float), "a number")]

    def boolean(self, name: str) -> bool:
        return typing.cast(bool, self._get(name, bool, "true or false"))

    def object(self, name: str) -> _Object:
        return _Object(self._get(name, dict, "an object"), f"{self.where}{name}.")

    def objects(self, name: str) -> list[_Object]:
        return [
            _Object(item, f"{self.where}{name}[{index}].")
            for index, item in enumerate(self._items(name, dict, "an object"))
        ]

    def _absent(self, name: str) -> bool:
        """Whether an optional field is null, or missing: added after the version that wrote
        the file."""
        return self.data.get(name) is None

    def _get(self, name: str, kind: typing.Any, expected: str) -> typing.Any:
        if name not in self.data:
            raise NotAGrade(f": {self.where}{name} is missing")
        return _checked(self.data[name], kind, expected, f"{self.where}{name}")

    def _items(self, name: str, kind: typing.Any, expected: str) -> list[typing.Any]:
        items = self._get(name, list, "a list")
        where = f"{self.where}{name}"
        return [_checked(item, kind, expected, f"{where}[{n}]") for n, item in enumerate(items)]


def _checked(value: typing.Any, kind: typing.Any, expected: str, where: str) -> typing.Any:
    """`value` if it is of `kind` (True is no number here), else `NotAGrade` saying where."""
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if wrong or (isinstance(value, float) and not math.isfinite(value)):
        raise NotAGrade(f": {where}: expected {expected}, not {_shown(value)}")
    return value


def _not_json(constant: str) -> typing.NoReturn:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN and Infinity; JSON has none


def _shown(value: object) -> str:
    return one_line(json.dumps(value, ensure_ascii=False), 40)

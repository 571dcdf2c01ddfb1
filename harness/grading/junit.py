"""The grade as JUnit XML, for `faultfirst report --junitxml`: made from a saved grade, where
pytest's own ``--junitxml`` (what a grading run writes) is not at hand.

It keeps what CI readers use: a ``<testcase>`` per scenario with its time, the properties the
plugin gives pytest's testcases (task, points, earned, status, title), and the score board's text
of a scenario that did not pass. A testcase is named by the scenario's id, in the class
``faultfirst.<task>``: a grade does not keep the test's module, nor the host, each test's setup
and teardown time or each parametrized case, which pytest's file records.

How a status maps: passed is a pass; ``not run`` is skipped (the run stopped first); ``app did
not start`` and ``harness error`` are errors (pytest sees them in a fixture or in the harness);
every other status is a failure.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from pathlib import Path

from .results import Grade, ScenarioResult, Status
from .scoreboard import describe

_ERRORS = (Status.APP_DID_NOT_START, Status.HARNESS_ERROR)


def junit_text(grade: Grade, *, started_at: float) -> str:
    """The grade as a JUnit XML document; `started_at` is the wall clock time the run started."""
    results = grade.results
    suite = ET.Element(
        "testsuite",
        {
            "name": "faultfirst",
            "errors": str(sum(r.status in _ERRORS for r in results)),
            "failures": str(sum(_failed(r) for r in results)),
            "skipped": str(sum(r.status is Status.NOT_RUN for r in results)),
            "tests": str(len(results)),
            "time": f"{grade.duration:.3f}",
            "timestamp": datetime.datetime.fromtimestamp(started_at, datetime.UTC).isoformat(),
        },
    )
    for result in results:
        suite.append(_testcase(result))
    root = ET.Element("testsuites", {"name": f"faultfirst: {grade.submission}"})
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | Path, grade: Grade, *, started_at: float) -> None:
    """Write `junit_text` to `path` (UTF-8), replacing it, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_text(grade, started_at=started_at), encoding="utf-8")


def _failed(result: ScenarioResult) -> bool:
    return result.status not in (Status.PASSED, Status.NOT_RUN, *_ERRORS)


def _testcase(result: ScenarioResult) -> ET.Element:
    scenario = result.scenario
    case = ET.Element(
        "testcase",
        {
            "classname": f"faultfirst.{scenario.task}",
            "name": scenario.id,
            "time": f"{result.duration:.3f}",
        },
    )
    properties = ET.SubElement(case, "properties")
    for name, value in (
        ("task", scenario.task),
        ("points", scenario.points),
        ("earned", result.earned),
        ("status", result.status.value),
        ("title", scenario.title),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    if result.status is Status.PASSED:
        return case
    text = "\n".join(describe(result))
    if result.status is Status.NOT_RUN:
        ET.SubElement(case, "skipped", {"message": result.reason}).text = text
    else:
        kind = "error" if result.status in _ERRORS else "failure"
        ET.SubElement(case, kind, {"message": text}).text = text
    return case

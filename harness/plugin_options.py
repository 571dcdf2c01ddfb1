"""The pytest plugin's options, read once into `Settings`.

Each setting is ``--faultfirst-WORD`` on the command line and, where a configuration file is a
sensible home for it, ``faultfirst_WORD`` there (``pytest.ini``, or ``[tool.pytest.ini_options]``
of ``pyproject.toml``): the command line wins over the file, the file over the default. Words and
defaults are `harness.vocabulary`'s, the same as ``faultfirst grade``'s. The options only
``faultfirst grade`` gives its grading run (the grade's pipe, its network) are hidden from
``pytest --help``: they are no business of anyone running pytest.
"""

from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import dataclass, field

import pytest

from . import vocabulary as words
from .grading import channel
from .grading.tasks import parse_tasks
from .hosting import isolation, sandbox
from .hosting.app_pool import MODES
from .hosting.sandbox import Limits

_NOT_GIVEN = object()  # a setting left to its default (None may be a value: no run timeout)

REPORTS = {
    "json": "write the grade as JSON (see docs/reports.md)",
    "md": "write the grade as Markdown, for a PR or CI summary",
    "html": "write the grade as one HTML page, with timelines",
    "gradescope": "write Gradescope's results.json",
}


@dataclass(frozen=True)
class Settings:
    """What a pytest run of the plugin was asked for, from the command line, the configuration
    file and the defaults."""

    submission: str = words.SUBMISSION
    tasks: tuple[str, ...] = parse_tasks(words.TASKS)
    seed: int = words.SEED
    app_mode: str = words.APP_MODE
    isolation: str = words.ISOLATION
    concurrency: int | str = words.CONCURRENCY  # a number, or "auto"
    scenario_timeout: float = words.SCENARIO_TIMEOUT
    run_timeout: float | None = words.RUN_TIMEOUT  # None: no limit
    limits: Limits = field(default_factory=Limits)
    app_python: str = sys.executable
    submission_label: str | None = None
    reports: dict[str, str] = field(default_factory=dict)  # json, md, html, gradescope -> path
    grade_fd: int | None = None
    grade_fd_reports: tuple[str, ...] = ("json",)
    isolated_network: bool = False

    def lane_count(self) -> int:
        """How many scenarios may run at once."""
        return words.auto_concurrency() if self.concurrency == "auto" else int(self.concurrency)


class _Setting(typing.NamedTuple):
    word: str  # --faultfirst-WORD; the `Settings` field is WORD with underscores
    convert: typing.Callable[[str], typing.Any]  # raises ValueError or ArgumentTypeError
    metavar: str | None
    help: str  # ends with the default
    ini: bool = True  # faultfirst_WORD in a configuration file too
    choices: tuple[str, ...] | None = None


def _one_of(*choices: str) -> typing.Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"choose from {', '.join(choices)}, not {text!r}")
        return text

    return convert


SETTINGS = (
    _Setting(
        "submission",
        str,
        "DIR",
        "the app to grade: a folder holding exercise_app/, or that exercise_app/ folder itself "
        "(default: the current folder)",
        ini=False,
    ),
    _Setting(
        "tasks",
        parse_tasks,
        "LIST",
        f"comma-separated tasks to grade, or 'all' (default: {words.TASKS})",
    ),
    _Setting(
        "seed",
        words.integer,
        "N",
        "seed for the fake provider's answers, jitter and fault profiles; the same seed replays "
        f"the same faults (default: {words.SEED})",
    ),
    _Setting(
        "app-mode",
        _one_of("auto", *MODES),
        None,
        "run the app in a thread of the grader (thread: fast) or in a child process "
        "(subprocess: isolated, as `faultfirst grade` does); auto: thread for the app in this "
        "installation's own folder, subprocess for any other, whose code must not run inside "
        f"the grader (default: {words.APP_MODE})",
        choices=("auto", *MODES),
    ),
    _Setting(
        "isolation",
        _one_of(*isolation.CHOICES),
        None,
        "subprocess mode: run each app in a box of its own, seeing only its files and "
        "processes (auto: where the machine allows it, as root on Linux or with bubblewrap, "
        "or as root with a uid and folder of its own where namespaces are refused; required: "
        f"refuse to grade where none of these can run; none: never) (default: {words.ISOLATION})",
        choices=isolation.CHOICES,
    ),
    _Setting(
        "concurrency",
        words.concurrency,
        "N",
        "run N scenarios at once, each with its own app and fake provider, in forked copies of "
        "this run, where every test collected is a scenario (auto: "
        f"{words.AUTO_PER_CORE} per core, {words.auto_concurrency()} here; 1: one at a time, "
        f"in this process) (default: {words.CONCURRENCY})",
    ),
    _Setting(
        "scenario-timeout",
        words.seconds,
        "SECONDS",
        "stop the app and fail a scenario that runs longer than this "
        f"(default: {words.SCENARIO_TIMEOUT:g})",
    ),
    _Setting(
        "run-timeout",
        words.seconds_or_none,
        "SECONDS",
        "stop a run of scenarios after this long: the scenario running times out and the rest "
        f"are graded 'not run'; 0: no limit (default: {words.RUN_TIMEOUT:g})",
    ),
    _Setting(
        "submission-label",
        str,
        "NAME",
        "how reports name the submission (default: its folder)",
        ini=False,
    ),
)

# The app's child process in subprocess mode: limits, and the Python it runs on.
LIMITS = tuple(
    _Setting(
        option.flag,
        words.positive,
        option.metavar,
        f"{option.help} (default: {getattr(Limits(), option.field)})",
    )
    for option in sandbox.OPTIONS
)
APP_PYTHON = _Setting(
    "app-python",
    str,
    "PATH",
    "the Python that runs the app (default: the one running pytest)",
    ini=False,
)
REPORT_SETTINGS = tuple(
    _Setting(kind, str, "PATH", f"{help} (default: none)", ini=False)
    for kind, help in REPORTS.items()
)
SHOWN = (*SETTINGS, *REPORT_SETTINGS, *LIMITS, APP_PYTHON)  # every option --help shows


def add_options(parser: pytest.Parser) -> None:
    """Register the plugin's options and configuration keys."""
    group = parser.getgroup("faultfirst", "faultfirst: grade LLM apps under injected faults")
    for setting in (*SETTINGS, *REPORT_SETTINGS):
        _add(parser, group, setting)
    child = parser.getgroup(
        "faultfirst-subprocess", "faultfirst: the app in a child process (subprocess mode)"
    )
    for setting in (*LIMITS, APP_PYTHON):
        _add(parser, child, setting)
    # Only `faultfirst grade` gives these, to its grading run; hidden from --help. Their old names
    # (--grade-fd, --grade-fd-reports, --isolated-network) are gone at once: only the
    # `faultfirst grade` of this same installation ever gave them.
    group.addoption(
        words.pytest_option("grade-fd"), type=int, default=None, help=argparse.SUPPRESS
    )
    group.addoption(
        words.pytest_option("grade-fd-reports"), default="json", help=argparse.SUPPRESS
    )
    group.addoption(
        words.pytest_option("isolated-network"), action="store_true", help=argparse.SUPPRESS
    )


def _add(parser: pytest.Parser, group: pytest.OptionGroup, setting: _Setting) -> None:
    help = setting.help + (f"; ini: {words.ini_key(setting.word)}" if setting.ini else "")
    group.addoption(
        words.pytest_option(setting.word),
        dest=_dest(setting.word),
        default=None,
        metavar=setting.metavar,
        choices=setting.choices,
        help=help,
    )
    if setting.ini:
        option = words.pytest_option(setting.word)
        parser.addini(words.ini_key(setting.word), f"as {option} (which wins over it)", default="")
    old = _old_name(setting.word)
    if old is not None:
        group.addoption(
            old,
            dest=_dest(setting.word, old=True),
            default=None,
            choices=setting.choices,
            help=argparse.SUPPRESS,
        )


def read(config: pytest.Config) -> Settings:
    """The run's settings: each from the command line, else the configuration file, else its
    default. A value that makes no sense is a `pytest.UsageError` naming where it came from."""
    given: dict[str, typing.Any] = {}
    for setting in (*SETTINGS, APP_PYTHON):
        value = _given(config, setting)
        if value is not _NOT_GIVEN:
            given[setting.word.replace("-", "_")] = value
    limits = {}
    for option, setting in zip(sandbox.OPTIONS, LIMITS):
        value = _given(config, setting)
        if value is not _NOT_GIVEN:
            limits[option.field] = value
    reports = {}
    for setting in REPORT_SETTINGS:
        path = _given(config, setting)
        if path is not _NOT_GIVEN:
            reports[setting.word] = path
    try:
        kinds = channel.parse_kinds(config.getoption(_dest("grade-fd-reports")))
    except ValueError as error:
        raise pytest.UsageError(f"{words.pytest_option('grade-fd-reports')}: {error}") from None
    return Settings(
        **given,
        limits=Limits(**limits),
        reports=reports,
        grade_fd=config.getoption(_dest("grade-fd")),
        grade_fd_reports=kinds,
        isolated_network=config.getoption(_dest("isolated-network")),
    )


def old_names_used(config: pytest.Config) -> dict[str, str]:
    """The old option names this run was given: old -> new."""
    used = {}
    for setting in SHOWN:
        old = _old_name(setting.word)
        if old is not None and config.getoption(_dest(setting.word, old=True)) is not None:
            used[old] = words.pytest_option(setting.word)
    return used


def _given(config: pytest.Config, setting: _Setting) -> typing.Any:
    """The setting's value as given (command line, then configuration file), or _NOT_GIVEN."""
    new = words.pytest_option(setting.word)
    sources = [(new, config.getoption(_dest(setting.word)))]
    if (old := _old_name(setting.word)) is not None:
        sources.append((old, config.getoption(_dest(setting.word, old=True))))
    if setting.ini:
        key = words.ini_key(setting.word)
        text = config.getini(key)
        where = f"{key} in {config.inipath}" if config.inipath else key
        sources.append((where, str(text) if text not in ("", None) else None))
    for where, text in sources:
        if text is not None:
            try:
                return setting.convert(text)
            except (ValueError, argparse.ArgumentTypeError) as error:
                raise pytest.UsageError(f"{where}: {error}") from None
    return _NOT_GIVEN


def _dest(word: str, *, old: bool = False) -> str:
    return ("faultfirst_old_" if old else "faultfirst_") + word.replace("-", "_")


def _old_name(word: str) -> str | None:
    new = words.pytest_option(word)
    return next((old for old, name in words.OLD_PYTEST_NAMES.items() if name == new), None)

"""One name and one default for each setting, whichever front end takes it.

``faultfirst grade``, ``play`` and ``fake-llm`` take a setting as ``--WORD`` (``--seed``,
``--tasks``, ``--scenario-timeout``). The pytest plugin takes the same setting as
``--faultfirst-WORD``, and from a configuration file as ``faultfirst_WORD``: pytest's options are
shared by every plugin installed in a virtualenv, so ours carry the project's name. The command
line wins over the configuration file, which wins over the default here.

The options renamed when the front ends were made to agree keep their old names for one release:
hidden from ``--help``, each still works and says its new name once (`OldName`, `notice`).
"""

from __future__ import annotations

import argparse
import os
import typing

from .grading.tasks import CORE_TASKS

SEED = 0
TASKS = ",".join(CORE_TASKS)
SUBMISSION = "."  # the folder holding exercise_app/
# The slowest scenario of the reference takes about 2 s (measured: 2.1 s, all eight tasks one at
# a time with a load average of 7 on two cores), so 20 s is ten times that, and a hanging app
# costs a grade no more than it must.
SCENARIO_TIMEOUT = 20.0
# A whole grade of every task took 53 s one scenario at a time on that loaded machine; an app
# that hangs in every scenario (79 of them, 20 s each) is stopped after 10 minutes.
RUN_TIMEOUT = 600.0
CONCURRENCY = "auto"  # see `auto_concurrency`
AUTO_PER_CORE = 2  # scenarios at once per core, for a concurrency of auto
ISOLATION = "auto"  # of `harness.hosting.isolation.CHOICES`
APP_MODE = "auto"  # thread for this installation's own app, subprocess for any other
# What a person starting the fake provider by hand sees: the faults their app must handle
# (long-tailed latency, a few transient errors), which is why faultfirst exists; `calm` is the
# fault-free one, a flag away.
PROFILE = "realistic"

PYTEST_PREFIX = "--faultfirst-"
INI_PREFIX = "faultfirst_"

# The old names, for one release: on the faultfirst commands, and in pytest.
OLD_GRADE_NAMES = {"--junit": "--junitxml"}
OLD_PLAY_NAMES = {"--app": "--submission"}
OLD_PYTEST_NAMES = {
    "--fault-seed": "--faultfirst-seed",
    "--submission": "--faultfirst-submission",
    "--tasks": "--faultfirst-tasks",
    "--app-mode": "--faultfirst-app-mode",
    "--app-isolation": "--faultfirst-isolation",
    "--concurrency": "--faultfirst-concurrency",
    "--scenario-timeout": "--faultfirst-scenario-timeout",
    "--run-timeout": "--faultfirst-run-timeout",
    "--app-memory": "--faultfirst-memory",
    "--app-cpu": "--faultfirst-cpu",
    "--app-processes": "--faultfirst-processes",
    "--app-python": "--faultfirst-app-python",
    "--submission-label": "--faultfirst-submission-label",
    "--grade-json": "--faultfirst-json",
    "--grade-md": "--faultfirst-md",
    "--grade-html": "--faultfirst-html",
    "--grade-gradescope": "--faultfirst-gradescope",
}


def auto_concurrency() -> int:
    """The scenarios a run takes at once by default (`harness.grading.lanes`): two per core
    this process may run on. A scenario mostly waits, but not only: on two cores, a grade of all
    eight tasks through `faultfirst grade` took 40 s in one lane, 23 s in two, 19 s in three,
    17 s in four, and no less in six, its apps and lanes then using both cores about fully."""
    return AUTO_PER_CORE * len(os.sched_getaffinity(0))


def pytest_option(word: str) -> str:
    """``scenario-timeout`` -> ``--faultfirst-scenario-timeout``."""
    return PYTEST_PREFIX + word


def ini_key(word: str) -> str:
    """``scenario-timeout`` -> ``faultfirst_scenario_timeout``."""
    return INI_PREFIX + word.replace("-", "_")


def notice(old: str, new: str) -> str:
    """The line an old option name prints, once a run."""
    return f"faultfirst: {old} is now {new}; the old name goes in the next release"


# -- values, checked the same way on every front end and in configuration files ------------------


def seconds(text: str) -> float:
    """A time limit: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds above 0, not {text!r}")
    return value


def seconds_or_none(text: str) -> float | None:
    """A time limit that may be off: seconds above 0, or 0 for none."""
    if text.strip() in ("0", "0.0"):
        return None
    try:
        return seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"a number of seconds above 0, or 0 for no limit, not {text!r}"
        ) from None


def integer(text: str) -> int:
    """A seed: any whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None


def positive(text: str) -> int:
    """A limit: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return value


def concurrency(text: str) -> int | str:
    """Scenarios at once: a whole number of 1 or more, or ``auto``."""
    if text.strip() == "auto":
        return "auto"
    try:
        return positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"a whole number of 1 or more, or auto, not {text!r}"
        ) from None


# -- old names on the faultfirst commands (argparse) ----------------------------------------------


class OldName(argparse.Action):
    """An option's old name: it sets what the new name sets, and notes that it was used, for the
    command to say the new name once (`used_old_names`). Hidden from --help."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: typing.Any):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: typing.Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        used = dict(getattr(namespace, "old_names_used", None) or {})
        used[option_string or self.option_strings[0]] = self.new
        namespace.old_names_used = used


def add_old_names(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    new: argparse.Action,
    renamed: dict[str, str],
) -> None:
    """Accept the old names `renamed` (old -> new) gives the option `new` (what ``add_argument``
    returned) as well as its own, for a release."""
    for old, name in renamed.items():
        if name in new.option_strings:
            parser.add_argument(
                old,
                action=OldName,
                new=name,
                dest=new.dest,
                type=new.type,
                choices=new.choices,
                metavar=new.metavar,
            )


def used_old_names(args: argparse.Namespace) -> dict[str, str]:
    """The old option names `args` were given with: old -> new, each once."""
    return dict(getattr(args, "old_names_used", None) or {})


def add_seed(command: argparse.ArgumentParser) -> None:
    """Add ``--seed`` to a command that starts the fake provider."""
    command.add_argument(
        "--seed",
        type=integer,
        default=SEED,
        metavar="N",
        help="seed for the fake provider's answers, jitter and faults; the same seed replays "
        f"the same faults (default: {SEED})",
    )

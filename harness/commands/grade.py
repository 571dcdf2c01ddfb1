"""``faultfirst grade``: grade one submission or a batch, and say so for people.

Exit status: 0 whatever the scores; 1 when a submission scored under ``--min-score``; 3 when a
submission could not be graded at all (an unreadable archive, an app that never started: the others
are still graded); 2 when the grader itself cannot run (a wrong option, scenarios missing, or
`--isolation required` where apps cannot be boxed).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import threading
import time
import typing
from pathlib import Path

from .. import vocabulary
from ..grading import colour, saved, scoreboard
from ..grading.sanitize import one_line
from ..grading.tasks import parse_tasks
from ..hosting import isolation, sandbox
from ..hosting.sandbox import Limits
from ..submissions import grader
from ..submissions.intake import ARCHIVES
from . import comparison

EXIT_UNDER_MIN_SCORE = 1
EXIT_GRADER_ERROR = 2
EXIT_NOT_GRADED = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C


# What `grade --help` says, for the interviewer (our installation) and for the candidate (the
# bundle, which has no hidden scenarios: `grader.is_candidate_bundle`).
HELP = {
    False: "grade submissions: folders, git checkouts, .zip or .tar.gz archives",
    True: "grade your app as your CI workflow does (or another copy: a folder or an archive)",
}
DESCRIPTION = {
    False: "Grade each SUBMISSION against the public and hidden scenarios of this installation, "
    "its app in a child process with resource limits (and in a box of its own where the machine "
    "allows: see --isolation), and print the score board (one submission) or a comparison table "
    "(several).",
    True: "Grade your app (or each SUBMISSION) against the public scenarios in this folder, as "
    "your CI workflow does: its app in a child process with resource limits (and in a box of its "
    "own where the machine allows: see --isolation), and print the score board. Your "
    "interviewer grades with their own copy of the grader, which also runs scenarios you do not "
    "have.",
}
DEFAULT_SUBMISSION = {
    False: "the starter bundled with faultfirst",
    True: "your app, the exercise_app/",
}


def add_command(commands: typing.Any) -> None:
    """Add ``grade`` to the ``faultfirst`` command's subcommands."""
    limits = Limits()
    bundle, tasks = grader.is_candidate_bundle(), grader.default_tasks()
    command = commands.add_parser(
        "grade",
        help=HELP[bundle],
        description=DESCRIPTION[bundle] + " Only a submission's exercise_app/ is used: its own "
        "scenarios, conftest.py and pytest settings are ignored.",
        epilog="Exit status: 0 whatever the scores; 1 if a submission scored under --min-score; "
        "3 if a submission could not be graded, or its app never started (the others still "
        "are); 2 if the grader cannot run, or --isolation required cannot be met.",
    )
    command.add_argument(
        "submissions",
        nargs="*",
        metavar="SUBMISSION",
        help="a folder holding exercise_app/ (a git checkout is one), or a .zip or .tar.gz (.tgz, "
        ".tar, .tar.bz2, .tar.xz) "
        f"of one (default: {DEFAULT_SUBMISSION[bundle]}, in {grader.ROOT})",
    )
    command.add_argument(
        "--public-only",
        action="store_true",
        # Nothing to leave out in the bundle: accepted there, not offered.
        help=argparse.SUPPRESS
        if bundle
        else "leave out scenarios/hidden/, as candidates run (default: off)",
    )
    command.add_argument(
        "--tasks",
        default=tasks,
        metavar="LIST",
        help="comma-separated tasks to grade, or 'all' (default: those this installation's "
        f"pytest grades, faultfirst_tasks in its pyproject.toml, else the core four: {tasks})",
    )
    reports = command.add_argument_group(
        "reports", "With several submissions, each PATH is a folder: one file per submission."
    )
    reports.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        help="the grade as JSON (its schema: harness/grading/grade.schema.json) (default: none)",
    )
    reports.add_argument(
        "--md",
        metavar="PATH",
        type=Path,
        help="the grade as Markdown; appended when PATH is $GITHUB_STEP_SUMMARY (default: none)",
    )
    reports.add_argument(
        "--html",
        metavar="PATH",
        type=Path,
        help="one self-contained page with every timeline (default: none)",
    )
    junit = reports.add_argument(
        "--junitxml",
        dest="junit",
        metavar="PATH",
        type=Path,
        help="JUnit XML, for CI (default: none)",
    )
    vocabulary.add_old_names(reports, junit, vocabulary.OLD_GRADE_NAMES)
    reports.add_argument(
        "--gradescope",
        metavar="PATH",
        type=Path,
        help="Gradescope's autograder results.json (default: none)",
    )
    reports.add_argument(
        "--csv", metavar="PATH", type=Path, help="the comparison table as CSV (default: none)"
    )
    reports.add_argument(
        "--table-json",
        metavar="PATH",
        type=Path,
        help="the comparison table as JSON (default: none)",
    )
    command.add_argument(
        "--min-score",
        type=float,
        metavar="PERCENT",
        help="exit with status 1 if a submission scores under PERCENT, 0-100 (default: none)",
    )
    command.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="grade N submissions at once (default: 1; each keeps about one core busy)",
    )
    command.add_argument(
        "--concurrency",
        type=vocabulary.concurrency,
        default=vocabulary.CONCURRENCY,
        metavar="N",
        help="scenarios at once in each grade, each with its own app (auto: "
        f"{vocabulary.AUTO_PER_CORE} per core, shared among the --jobs: "
        f"{vocabulary.auto_concurrency()} here at -j 1; 1: one at a time) "
        f"(default: {vocabulary.CONCURRENCY})",
    )
    command.add_argument(
        "--install-deps",
        action="store_true",
        help="install the dependencies a submission declares (pyproject.toml, requirements.txt) "
        "and this environment lacks into a throwaway virtualenv, and run its app there (wheels "
        "only: building a package from source would run its code on the grader); without it, "
        "what is lacking is named in one line and the app runs here (default: off)",
    )
    command.add_argument(
        "--isolation",
        choices=isolation.CHOICES,
        default=vocabulary.ISOLATION,
        help="run each app in a box, seeing only its own files and processes (auto: where the "
        "machine allows it: as root on Linux, with a uid of its own and each grade in a network "
        "of its own; as a normal user with bubblewrap; as root where namespaces are refused, "
        "with a uid and a folder of its own only; required: refuse to grade, exit 2, where "
        f"none of these can run; none: never) (default: {vocabulary.ISOLATION})",
    )
    limits_group = command.add_argument_group("limits")
    limits_group.add_argument(
        "--scenario-timeout",
        type=vocabulary.seconds,
        default=vocabulary.SCENARIO_TIMEOUT,
        metavar="SECONDS",
        help=f"per scenario (default: {vocabulary.SCENARIO_TIMEOUT:g})",
    )
    limits_group.add_argument(
        "--run-timeout",
        type=vocabulary.seconds_or_none,
        default=vocabulary.RUN_TIMEOUT,
        metavar="SECONDS",
        help="per submission; scenarios not reached score nothing; 0: no limit "
        f"(default: {vocabulary.RUN_TIMEOUT:g})",
    )
    for option in sandbox.OPTIONS:
        default = getattr(limits, option.field)
        limits_group.add_argument(
            f"--{option.flag}",
            type=vocabulary.positive,
            default=default,
            metavar=option.metavar,
            help=f"{option.help} (default: {default})",
        )
    vocabulary.add_seed(command)
    colour.add_option(command)
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        grader.check_installation()
        grader.isolation_level(options)
    except (ValueError, grader.GraderError) as error:
        print(f"faultfirst grade: {error}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    sources = args.submissions or [str(grader.ROOT)]
    names = _unique_names(sources)
    paint = colour.Paint(colour.wanted(args.color, sys.stdout))
    try:
        if len(sources) == 1:
            outcomes = [_grade_one(sources[0], names[0], options, args, paint)]
        else:
            outcomes = _grade_batch(sources, names, options, args, paint)
    except KeyboardInterrupt:  # the grading children are gone already (see grader._run_child)
        print("\nfaultfirst grade: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.csv is not None:
        comparison.write_csv(args.csv, outcomes)
    if args.table_json is not None:
        comparison.write_json(args.table_json, outcomes)
    return _exit_status(outcomes, args.min_score)


def _options(args: argparse.Namespace) -> grader.Options:
    parse_tasks(args.tasks)  # raises ValueError naming an unknown task
    if args.jobs < 1:
        raise ValueError("--jobs must be 1 or more")
    if args.min_score is not None and not 0 <= args.min_score <= 100:
        raise ValueError("--min-score is a percentage, from 0 to 100")
    return grader.Options(
        tasks=args.tasks,
        public_only=args.public_only,
        seed=args.seed,
        scenario_timeout=args.scenario_timeout,
        run_timeout=args.run_timeout,
        limits=Limits(**{option.field: getattr(args, option.flag) for option in sandbox.OPTIONS}),
        install_deps=args.install_deps,
        isolation=args.isolation,
        concurrency=(
            max(1, vocabulary.auto_concurrency() // args.jobs)
            if args.concurrency == "auto"
            else args.concurrency
        ),
    )


def _grade_one(
    source: str, name: str, options: grader.Options, args: argparse.Namespace, paint: colour.Paint
) -> grader.Outcome:
    hidden = not (options.public_only or grader.is_candidate_bundle())
    scope = "public and hidden scenarios" if hidden else "public scenarios"
    print(f"faultfirst grade: {source} ({scope})", flush=True)
    outcome = grader.grade(
        source,
        options,
        reports=_reports(args, name, batch=False),
        name=name,
        echo=lambda line: print(line, end="", flush=True),
        warn=_warning,
    )
    if outcome.report is not None:  # an app that never started has a grade saying so
        # Drawn here, where the terminal is, from the grade the run sent (the run leaves its
        # board out): the board `faultfirst report` prints from the saved JSON, by construction,
        # and coloured without letting any escape sequence of the run's output through.
        scoreboard.print_board(saved.from_json(outcome.report).grade, paint=paint)
    if not outcome.graded:
        print(f"faultfirst grade: {name} was not graded: {outcome.reason}", file=sys.stderr)
    _warn_of_changed_grader(outcome)
    for kind, path in outcome.reports.items():
        print(f"{kind} report: {path}")
    return outcome


def _grade_batch(
    sources: list[str],
    names: list[str],
    options: grader.Options,
    args: argparse.Namespace,
    paint: colour.Paint,
) -> list[grader.Outcome]:
    print(f"faultfirst grade: {len(sources)} submissions, {args.jobs} at a time", flush=True)
    cancel = threading.Event()
    progress = Progress(len(sources), paint)

    def grade(source: str, name: str) -> grader.Outcome:
        if not cancel.is_set():
            progress.started(name)
        reports = _reports(args, name, batch=True)
        outcome = grader.grade(
            source, options, reports=reports, name=name, cancel=cancel, warn=_warning
        )
        if not cancel.is_set():  # here, before this thread says the next one is starting
            progress.finished(outcome)
        return outcome

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(grade, source, name) for source, name in zip(sources, names)]
        try:
            for future in concurrent.futures.as_completed(futures):
                _warn_of_changed_grader(future.result())
        except BaseException:  # Ctrl-C: stop every run now rather than after the batch
            cancel.set()  # each running grade kills its child within a second or so
            for future in futures:
                future.cancel()  # and those not started yet never start
            raise
    outcomes = [future.result() for future in futures]
    print()
    for line in comparison.table(outcomes, paint=paint):
        print(line)
    return outcomes


def _warning(line: str) -> None:
    print(f"faultfirst grade: warning: {line}", file=sys.stderr, flush=True)


def _warn_of_changed_grader(outcome: grader.Outcome) -> None:
    """Say when a checkout changed the grader it was sent: its own CI score means nothing."""
    changed = outcome.changed_grader
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        shown = one_line(", ".join(changed[:3]), limit=300) + more  # names the candidate chose
        print(
            f"faultfirst grade: warning: {outcome.name} changed the grader it was sent ({shown}), "
            "so a CI score from its repository is not to be trusted; this grade used this "
            "installation's grader and stands",
            file=sys.stderr,
        )


class Progress:
    """The batch's lines as it goes, each one line, printed from any thread: a submission
    starting, and one finishing with its score and an estimate of the time left.

    The estimate assumes the rest go at the pace of those finished so far: the time since the
    batch started, over the submissions finished, times those still to finish. With N at a time
    that pace counts the parallel work already, and it settles as more finish."""

    def __init__(self, total: int, paint: colour.Paint) -> None:
        self.total, self.paint = total, paint
        self.done = 0
        self.began = time.monotonic()
        self._lock = threading.Lock()  # so that lines from two threads never mix

    def started(self, name: str) -> None:
        self._print(f"  {' ' * self._width()} {name}: grading")

    def finished(self, outcome: grader.Outcome) -> None:
        with self._lock:
            self.done += 1
            done, elapsed = self.done, time.monotonic() - self.began
        left = self.total - done
        estimate = f"; about {_duration(elapsed / done * left)} left" if left else ""
        count = f"[{done:>{len(str(self.total))}}/{self.total}]"
        self._print(f"  {count} {self._result(outcome)}{estimate}")

    def _result(self, outcome: grader.Outcome) -> str:
        if not outcome.graded:
            return self.paint.status(f"{outcome.name}: not graded ({outcome.reason})", "not graded")
        score = outcome.report["score"]
        points = f"{score['earned']}/{score['possible']} ({score['percentage']:.0f}%)"
        points = self.paint.share(points, score["earned"], score["possible"])
        status = self.paint.status(outcome.status, outcome.status)
        return f"{outcome.name}: {points}, {status}, {outcome.wall_time:.1f}s"

    def _width(self) -> int:
        return len(f"[{self.total}/{self.total}]")

    def _print(self, line: str) -> None:
        with self._lock:
            print(line, flush=True)


def _duration(seconds: float) -> str:
    """``45s``, ``3m 20s``, ``1h 05m``: an estimate, to the second below a minute."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _reports(args: argparse.Namespace, name: str, *, batch: bool) -> dict[str, Path]:
    chosen = {kind: getattr(args, kind) for kind in grader.REPORT_KINDS}
    if not batch:
        return {kind: path for kind, path in chosen.items() if path is not None}
    return {
        kind: folder / f"{name}{grader.SUFFIXES[kind]}"
        for kind, folder in chosen.items()
        if folder is not None
    }


def _unique_names(sources: list[str]) -> list[str]:
    """Names for reports and the table: each source's name without its archive suffix (and
    without control characters: a candidate chose it), made unique (``alice``, ``alice-2``) when
    two submissions share one."""
    names: list[str] = []
    for source in sources:
        name = Path(source).resolve().name
        for suffix in ARCHIVES:  # longest first: .tar.gz before .tar
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.append(comparison.unique_name(name, names))
    return names


def _exit_status(outcomes: list[grader.Outcome], min_score: float | None) -> int:
    if not all(outcome.graded for outcome in outcomes):  # no grade, or an app that never started
        return EXIT_NOT_GRADED
    if min_score is not None and any(outcome.percentage < min_score for outcome in outcomes):
        worst = min(outcomes, key=lambda outcome: outcome.percentage)
        print(
            f"faultfirst grade: {worst.name} scored {worst.percentage:.0f}%, under --min-score "
            f"{min_score:g}",
            file=sys.stderr,
        )
        return EXIT_UNDER_MIN_SCORE
    return 0

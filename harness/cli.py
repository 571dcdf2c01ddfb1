"""The ``faultfirst`` command."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import typing
from pathlib import Path

from . import __version__, export, grade_command, play, report_command, table_command, vocabulary
from .engines import gradescope, workflow
from .fake_llm import DEFAULT_MODELS, PROFILES, Call, FakeLLM
from .hosting.launcher import AppDidNotStart, AppProcess
from .hosting.server import ServerError


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    for old, new in vocabulary.used_old_names(args).items():
        print(vocabulary.notice(old, new), file=sys.stderr)
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultfirst",
        description="A take-home exercise for engineers who build on LLMs, and its grader.",
    )
    parser.add_argument("--version", action="version", version=f"faultfirst {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    fake = commands.add_parser(
        "fake-llm",
        help="serve the fault-injecting fake LLM provider",
        description="Serve an OpenAI-compatible fake LLM provider on 127.0.0.1 that injects faults, "
        "and print a line for every request it answers.",
    )
    fake.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: 0, a free one)"
    )
    fake.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=vocabulary.PROFILE,
        help="how the provider behaves: instant has no delays; calm streams at a readable pace; "
        "realistic has long-tailed latency and a few percent transient errors; outage takes the "
        f"first model down (default: {vocabulary.PROFILE})",
    )
    _add_seed(fake)
    fake.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated model names, the primary first (default: {','.join(DEFAULT_MODELS)})",
    )
    fake.add_argument("--api-key", help="require this bearer token (default: accept any)")
    fake.add_argument(
        "--quiet", action="store_true", help="do not print a line per request (default: off)"
    )
    fake.set_defaults(run=_fake_llm)

    player = commands.add_parser(
        "play",
        help="run the app against the fake provider, and watch what it does under faults",
        description="Start the fake LLM provider and the app, print the page's address, then "
        "print what happens, in time order, each line marked with whose it is: 'app' for what "
        "the app prints (its log, a traceback), 'user' for a user who left before their answer "
        "ended, 'llm' for each call the app makes to the provider, when it starts (model, "
        "fault injected) and when it ends (status, tokens, or that the app hung up). "
        "Ctrl-C stops both.",
    )
    player.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=vocabulary.PROFILE,
        help="how the provider behaves, see 'faultfirst fake-llm --help' "
        f"(default: {vocabulary.PROFILE})",
    )
    submission = player.add_argument(
        "--submission",
        dest="app",  # its name before the rename (--app), which _play reads
        type=Path,
        default=Path(vocabulary.SUBMISSION),
        metavar="DIR",
        help="the folder holding exercise_app/ (default: the current folder)",
    )
    vocabulary.add_old_names(player, submission, vocabulary.OLD_PLAY_NAMES)
    player.add_argument(
        "--port", type=int, default=0, help="the app's port (default: 0, a free one)"
    )
    _add_seed(player)
    player.set_defaults(run=_play)

    grade_command.add_command(commands)
    report_command.add_command(commands)
    table_command.add_command(commands)
    export.add_command(commands)
    gradescope.add_command(commands)
    workflow.add_command(commands)
    return parser


def _add_seed(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--seed",
        type=vocabulary.integer,
        default=vocabulary.SEED,
        metavar="N",
        help="seed for the fake provider's answers, jitter and faults; the same seed replays "
        f"the same faults (default: {vocabulary.SEED})",
    )


def _fake_llm(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    fake = FakeLLM(
        models=models,
        seed=args.seed,
        profile=args.profile,
        api_key=args.api_key,
        port=args.port,
        admin=True,  # the ledger and plan over HTTP, for the person running it
    )
    try:
        fake.start()
    except ServerError as exc:
        print(f"faultfirst fake-llm: {exc}", file=sys.stderr)
        return 2
    print(f"faultfirst fake LLM provider — profile {args.profile}, seed {args.seed}")
    print(f"  base URL  {fake.base_url}   (LLM_BASE_URL)")
    print(f"  models    {', '.join(models)}")
    print(f"  ledger    {fake.admin_url}/ledger")
    print(f"  faults    POST {fake.admin_url}/plan")
    print("Press Ctrl-C to stop.", flush=True)
    return _follow_until_stopped(lambda until: _follow(fake, quiet=args.quiet, until=until), fake)


def _play(args: argparse.Namespace) -> int:
    fake = FakeLLM(seed=args.seed, profile=args.profile)
    fake.start()
    # Only where the provider is: the app's own defaults for timeouts and retries are what a
    # person should watch at work here, not the short ones the scenarios use.
    settings = {
        "LLM_BASE_URL": fake.base_url,
        "PRIMARY_MODEL": fake.models[0],
        "FALLBACK_MODEL": fake.models[1],
    }
    feed = play.Feed(fake.ledger.started_at, lambda line: print(line, flush=True))
    app = AppProcess(args.app, settings, port=args.port, observer=play.observer(feed))
    try:
        app.start()
    except (AppDidNotStart, OSError) as exc:
        app.stop()
        fake.stop()
        print(f"faultfirst play: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the app starts: it runs in a session of its own
        app.stop()
        fake.stop()
        print("stopped.")
        return 130
    print(f"faultfirst play — the app in {app.folder}, the provider's profile {args.profile}")
    print(f"  open      {app.url}/")
    print(f"  provider  {fake.base_url} ({', '.join(fake.models)}; the first is PRIMARY_MODEL)")
    print(
        "What happens, in time order: 'app' what your app prints, 'user' a user leaving before "
        "their answer ended, 'llm' each call to the provider as it starts and as it ends. "
        "Ctrl-C stops.",
        flush=True,
    )
    return _follow_until_stopped(lambda until: play.follow(fake, feed, until), fake, app)


def _follow_until_stopped(
    follow: typing.Callable[[list[int]], None], fake: FakeLLM, app: AppProcess | None = None
) -> int:
    """`follow` until Ctrl-C (or SIGTERM) lands in the list it is given, then stop the app and
    the fake.

    The signals only note themselves in a list: an exception raised wherever the main thread
    happens to be (say, holding the ledger's lock) could leave the server unable to stop, and a
    handler taking a lock (`threading.Event.set`) deadlocks when the signal lands while the main
    thread holds that same lock."""
    stop_signals: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: stop_signals.append(signum))
    try:
        follow(stop_signals)
    finally:
        if app is not None:
            app.stop()
        fake.stop()
    print("stopped.")
    return 0


def _follow(fake: FakeLLM, *, quiet: bool, until: list[int]) -> None:
    printed: set[int] = set()
    while not until:
        time.sleep(0.2)
        if quiet:
            continue
        for call in fake.calls:
            if call.finished and call.id not in printed:
                printed.add(call.id)
                print(describe(call, fake.ledger.started_at), flush=True)


def describe(call: Call, since: float) -> str:
    """One line for a finished call, e.g. ``  12.31s #4 fake-large stream ok -> 200 completed``."""
    mode = "stream" if call.stream else "json"
    status = call.status if call.status is not None else "---"
    took = (call.ended_at or call.received_at) - call.received_at
    outcome = "the client hung up" if call.disconnected else call.outcome
    return (
        f"{call.received_at - since:8.2f}s  #{call.id:<4} {call.model:<12} {mode:<6} "
        f"{call.fault:<28} -> {status} {outcome}, {call.tokens} tokens in {took:.2f}s"
    )


if __name__ == "__main__":
    sys.exit(main())

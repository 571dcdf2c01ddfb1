"""`faultfirst fake-llm`: the fake provider on its own, for a person to point an app at."""

from __future__ import annotations

import argparse
import sys
import time
import typing

from .. import vocabulary
from ..fake_llm import DEFAULT_MODELS, PROFILES, Call, FakeLLM
from ..hosting.server import ServerError
from .foreground import run_until_stopped


def add_command(commands: typing.Any) -> None:
    """Add ``fake-llm`` to the ``faultfirst`` command's subcommands."""
    command = commands.add_parser(
        "fake-llm",
        help="serve the fault-injecting fake LLM provider",
        description="Serve an OpenAI-compatible fake LLM provider on 127.0.0.1 that injects faults, "
        "and print a line for every request it answers.",
    )
    command.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: 0, a free one)"
    )
    command.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=vocabulary.PROFILE,
        help="how the provider behaves: instant has no delays; calm streams at a readable pace; "
        "realistic has long-tailed latency and a few percent transient errors; outage takes the "
        f"first model down (default: {vocabulary.PROFILE})",
    )
    vocabulary.add_seed(command)
    command.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated model names, the primary first (default: {','.join(DEFAULT_MODELS)})",
    )
    command.add_argument("--api-key", help="require this bearer token (default: accept any)")
    command.add_argument(
        "--quiet", action="store_true", help="do not print a line per request (default: off)"
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
    return run_until_stopped(lambda until: _follow(fake, quiet=args.quiet, until=until), fake)


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

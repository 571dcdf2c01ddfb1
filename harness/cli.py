"""The ``faultfirst`` command."""

from __future__ import annotations

import argparse
import os
import sys
import typing

from . import __version__, vocabulary
from .commands import export_candidate, fake_llm, grade, play, report, table
from .engines import gradescope, workflow

EXIT_BROKEN_PIPE = 141  # as a shell reports a command ended by SIGPIPE


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    for old, new in vocabulary.used_old_names(args).items():
        print(vocabulary.notice(old, new), file=sys.stderr)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `faultfirst table ... | head`: the reader has had enough
        # Python would complain again when it flushes stdout at exit: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultfirst",
        description="A take-home exercise for engineers who build on LLMs, and its grader.",
    )
    parser.add_argument("--version", action="version", version=f"faultfirst {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    fake_llm.add_command(commands)
    play.add_command(commands)
    grade.add_command(commands)
    report.add_command(commands)
    table.add_command(commands)
    export_candidate.add_command(commands)
    gradescope.add_command(commands)
    workflow.add_command(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())

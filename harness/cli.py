"""The ``faultfirst`` command."""

from __future__ import annotations

import argparse
import sys
import typing

from . import __version__, vocabulary
from .commands import export_candidate, fake_llm, grade, play, report, table
from .engines import gradescope, workflow


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

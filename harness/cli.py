"""The ``faultfirst`` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing

from . import __version__, vocabulary

EXIT_BROKEN_PIPE = 141  # as a shell reports a command ended by SIGPIPE

# Each subcommand's module, which adds it (`add_command`). A command imports only its own: `grade`
# needs neither the fake provider nor the engines, and each import costs every call its time.
COMMANDS = {
    "fake-llm": "harness.commands.fake_llm",
    "play": "harness.commands.play",
    "grade": "harness.commands.grade",
    "report": "harness.commands.report",
    "table": "harness.commands.table",
    "export-candidate": "harness.commands.export_candidate",
    "export-gradescope": "harness.engines.gradescope",
    "export-workflow": "harness.engines.workflow",
}


def main(argv: typing.Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv)
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


def _parser(argv: typing.Sequence[str]) -> argparse.ArgumentParser:
    """The command's parser for `argv`: with the subcommand it names alone, or with all of them
    when it names none (``faultfirst --help``, say) or one not offered here."""
    parser = argparse.ArgumentParser(
        prog="faultfirst",
        description="A take-home exercise for engineers who build on LLMs, and its grader.",
    )
    parser.add_argument("--version", action="version", version=f"faultfirst {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    if chosen is not None:
        importlib.import_module(COMMANDS[chosen]).add_command(commands)
    if chosen not in commands.choices:  # none named, or one a candidate's bundle leaves out
        for module in COMMANDS.values():
            importlib.import_module(module).add_command(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())

"""Colour on the terminal: whether to use it, and the few styles the score board, the batch's
lines and the comparison table use.

Whether follows pytest's rules, so that the score board looks the same under ``pytest`` and
``faultfirst``: ``--color yes`` or ``no`` decides; with ``auto`` (the default) ``NO_COLOR`` set to
anything turns colour off (https://no-color.org), then ``FORCE_COLOR`` turns it on, and else
only a terminal that is not ``TERM=dumb`` gets it.

A style only wraps text that is already safe to show (`harness.grading.sanitize` took every
escape sequence out of what a candidate controls): the only escape sequences in coloured output
are the SGR ones written here, so ``plain(coloured) == uncoloured`` always.
"""

from __future__ import annotations

import argparse
import os
import re
import typing

CHOICES = ("auto", "yes", "no")

_RESET = "\x1b[0m"
_CODES = {"bold": "1", "red": "31", "green": "32", "yellow": "33"}
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def add_option(command: argparse.ArgumentParser) -> None:
    """Add ``--color`` to a command, as pytest has it."""
    command.add_argument(
        "--color",
        choices=CHOICES,
        default="auto",
        help="colour the terminal's output; auto: on a terminal, unless NO_COLOR is set or "
        "FORCE_COLOR asks for it (default: auto)",
    )


def wanted(choice: str, stream: typing.TextIO) -> bool:
    """Whether to colour what goes to `stream`, given ``--color`` `choice`."""
    if choice != "auto":
        return choice == "yes"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


class Paint:
    """Styles text for the terminal, or (``Paint(False)``) leaves it as it is."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def style(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        return f"\x1b[{';'.join(_CODES[style] for style in styles)}m{text}{_RESET}"

    def bad(self, text: str) -> str:
        return self.style(text, "red")

    def share(self, text: str, earned: float, possible: float, *more: str) -> str:
        """`text` green for every point, red for none, yellow in between."""
        if possible <= 0:
            return self.style(text, *more)
        colour = "green" if earned >= possible else "red" if earned <= 0 else "yellow"
        return self.style(text, colour, *more)

    def status(self, text: str, status: str) -> str:
        """`text` in the colour of a grade's status: nothing for graded, yellow for
        incomplete, red for ungradable or not graded."""
        if status == "incomplete":
            return self.style(text, "yellow")
        if status in ("ungradable", "not graded"):
            return self.style(text, "red")
        return text


PLAIN = Paint(False)


def plain(text: str) -> str:
    """`text` without the styles `Paint` adds."""
    return _SGR.sub("", text)

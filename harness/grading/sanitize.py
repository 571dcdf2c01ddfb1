"""Text the app under test controls, made safe to show on a terminal and in reports.

A submission chooses its own error lines, replies, model names and exception messages, and they
reach the score board, the reports and the interviewer's terminal through the reasons a scenario
failed. Each such text is cleaned where a result is made (`clean`): escape sequences and other
control characters go (they could clear a screen and paint a fake score line), and the length is
capped. Markdown gets one more pass where it is written (`markdown`): there ``@name`` pings
people, ``#12`` links issues and a bare address becomes a link.
"""

from __future__ import annotations

import re

# A reason is a sentence or two; an app's reply quoted in one is cut well before it floods a
# terminal or makes a report unreadable.
LIMIT = 1000

# Whole escape sequences first (CSI such as "\x1b[2J", OSC such as a terminal title), so that
# their printable tails ("[2J") do not stay behind; then any other control character but tab and
# newline, and the bidirectional overrides that reorder how a line reads.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_]?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# GitHub turns these into notifications and links; a zero-width space after the sign keeps the
# text as it reads and takes the meaning away.
_ZERO_WIDTH_SPACE = "\u200b"
_LINKED = re.compile(r"(?i)(@|#|\bgh-)(?=\w)|\b(https?|ftp)(?=://)|\bwww(?=\.)|\bmailto(?=:)")


def clean(text: str, limit: int = LIMIT) -> str:
    """`text` without escape sequences or control characters (tab becomes a space, newlines
    stay), cut at `limit` characters."""
    text = _ESCAPE.sub("", text.replace("\r\n", "\n").replace("\t", " "))
    text = _CONTROL.sub("", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def one_line(text: str, limit: int = LIMIT) -> str:
    """`clean`, with every run of whitespace (newlines too) made one space."""
    return " ".join(clean(text, limit).split())


def markdown(text: str) -> str:
    """`text` with mentions, issue references and bare links made plain text for GitHub."""
    return _LINKED.sub(lambda found: found.group(0) + _ZERO_WIDTH_SPACE, text)

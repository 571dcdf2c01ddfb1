"""The grade's pipe back to `faultfirst grade` (`harness.grading.channel`)."""

from __future__ import annotations

import json
import os

import pytest

from harness.grading import channel


def test_what_is_sent_is_what_is_received() -> None:
    read_end, write_end = os.pipe()
    reports = {"json": json.dumps({"status": "graded"}), "md": "## faultfirst ✓"}
    channel.send(write_end, reports)
    with os.fdopen(read_end, "rb") as pipe:
        assert channel.receive(pipe.read(), ("json", "md")) == reports


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "it sent no grade"),
        (b'{"json": "{}"', "what it sent is not a grade"),
        (b"\xff\xfe", "what it sent is not a grade"),
        (b'["json"]', "what it sent is not the grade asked for"),
        (b'{"json": "{}", "md": "x"}', "what it sent is not the grade asked for"),  # md unasked
        (b'{"json": 1}', "what it sent is not the grade asked for"),
        (b'{"json": "not json"}', "its JSON report is not JSON"),
        (b'{"json": "[1]"}', "its JSON report is not a grade"),
    ],
)
def test_anything_else_is_no_grade(data: bytes, why: str) -> None:
    with pytest.raises(channel.ChannelError, match=f"^{why}$"):
        channel.receive(data, ("json",))


def test_the_kinds_are_checked() -> None:
    assert channel.parse_kinds("json, md,,junit") == ("json", "md", "junit")
    with pytest.raises(ValueError, match="unknown report 'pdf': choose from json, md, html"):
        channel.parse_kinds("json,pdf")

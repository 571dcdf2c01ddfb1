"""`faultfirst play` as a candidate uses it: the real command, an app of its own, a real client
that leaves mid-answer, and what the terminal shows.

The app here is written for the test (the starter prints nothing and never fails): it prints a
line, and an escape sequence, when asked; it relays the provider's stream as the reference does,
so that it hangs up on the provider when its user leaves; and one route fails with a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path

import httpx
import pytest

from harness.commands.play import Feed
from harness.fake_llm import text, wire
from harness.hosting import isolation, sandbox

COMMAND = [sys.executable, "-m", "harness.cli", "play"]
WAIT = 30.0  # seconds for a line to show: far more than it takes, on a machine busy with others

APP = '''
import os

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


async def healthz(request):
    return JSONResponse({"status": "ok"})


async def broken(request):
    raise RuntimeError("the test app broke on purpose")


async def answer_stream(request):
    question = (await request.json())["question"]
    print(f"asking the model: {question}")
    print("\\x1b[2J\\x1b]0;a title\\x07after an escape sequence the terminal must not get")
    return StreamingResponse(relay(question), media_type="text/event-stream")


async def relay(question):
    body = {
        "model": os.environ["PRIMARY_MODEL"],
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    async with httpx.AsyncClient(base_url=os.environ["LLM_BASE_URL"], timeout=30) as client:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    yield line + "\\n\\n"


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/boom", broken),
        Route("/api/answer/stream", answer_stream, methods=["POST"]),
    ]
)
'''

LINE = re.compile(r"^ +(?P<at>\d+\.\d\d)s  (?P<who>app |user|llm )  (?P<text>.*)$")


def long_question() -> str:
    """A question whose answer, under the calm profile (0.3 s to think, ~0.03 s a token), takes
    the fake about 2 s: a client that leaves after 3 tokens leaves it far from its end."""
    questions = [f"What do the papers say about topic {n}?" for n in range(40)]

    def tokens(question: str) -> int:
        prompt = wire.prompt_text([{"role": "user", "content": question}])
        return len(text.answer_tokens(prompt, "fake-large", seed=0))

    longest = max(questions, key=tokens)
    assert tokens(longest) >= 50, "the fake's answers have changed: pick other questions"
    return longest


class Play:
    """`faultfirst play` running, its output read line by line as it comes."""

    def __init__(self, app: Path) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "--profile", "calm", "--app", str(app)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, to kill if it will not stop
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line matching `pattern`, waiting up to `WAIT` seconds for it."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    shown = "\n".join(self.lines)
                    raise AssertionError(f"play never printed {pattern!r}; it printed:\n{shown}")
                self._changed.wait(min(left, 0.5))

    def stop(self) -> str:
        """Ctrl-C, as a person stops it; its stderr. Whatever it leaves running is killed: itself
        after 15 s, then any process of the app's session (the app leads one of its own)."""
        assert self.process.stderr is not None
        apps = isolation.descendants(self.process.pid)
        try:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            for app in apps:
                sandbox.kill_session(app)
            self._reader.join(5)
        return self.process.stderr.read()


@pytest.fixture
def play(tmp_path: Path) -> typing.Iterator[Play]:
    (tmp_path / "exercise_app").mkdir()
    (tmp_path / "exercise_app" / "__init__.py").write_text("")
    (tmp_path / "exercise_app" / "app.py").write_text(APP)
    running = Play(tmp_path)
    try:
        yield running
    finally:
        if running.process.returncode is None:
            running.stop()


def test_play_shows_the_apps_output_a_user_leaving_and_the_app_hanging_up_in_time_order(
    play: Play,
) -> None:
    page = play.wait_for(r"open +(http://127\.0\.0\.1:\d+)/").group(1)
    question = long_question()

    assert httpx.get(f"{page}/boom").status_code == 500
    play.wait_for(r"  app   RuntimeError: the test app broke on purpose$")

    with httpx.Client(base_url=page, timeout=WAIT) as client:
        body = {"question": question}
        with client.stream("POST", "/api/answer/stream", json=body) as stream:
            tokens = 0
            for line in stream.iter_lines():
                tokens += line.startswith("data: {")
                if tokens == 3:
                    break  # leaving the block closes the connection: the user closed the tab
    assert tokens == 3

    left = play.wait_for(
        r"  user  left POST /api/answer/stream \d+\.\d\ds after asking, "
        r"before the response ended \(status 200 sent\)$"
    )
    hung_up = play.wait_for(r"  llm   (#\d+) +fake-large +stream -> the app hung up after \d+ token")
    call = hung_up.group(1)
    err = play.stop()
    assert play.process.returncode == 0, err
    assert "Traceback" not in err

    out = play.lines
    print("\n".join(out))  # shown when the test fails
    assert out[-1] == "stopped."
    timeline = [match for line in out if (match := LINE.match(line))]
    whose = {match["who"].strip() for match in timeline}
    assert whose == {"app", "user", "llm"}

    # The app's own output, prefixed as its own: a print, and the traceback of its 500.
    app_lines = [match["text"] for match in timeline if match["who"] == "app "]
    assert f"asking the model: {question}" in app_lines
    assert "Traceback (most recent call last):" in app_lines
    # Escape sequences are cleaned away as the grader cleans them, the text kept.
    assert "after an escape sequence the terminal must not get" in app_lines
    assert not any("\x1b" in line or "\x07" in line for line in out)

    # In time order: each line's time at or after the one before, and the call that the user
    # left shown starting before they left and before the app hung up on it.
    times = [float(match["at"]) for match in timeline]
    assert times == sorted(times)
    starts = re.compile(rf"  llm   {call} +fake-large +stream starts \(fault: ok\)$")
    started = next(index for index, line in enumerate(out) if starts.search(line))
    assert started < out.index(left.string)
    assert started < out.index(hung_up.string)


def test_the_help_says_what_each_kind_of_line_is() -> None:
    shown = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True).stdout
    words = " ".join(shown.split())
    for told in ("in time order", "'app' for what the app prints", "'user' for a user who left",
                 "'llm' for each call", "when it starts", "when it ends", "the app hung up"):
        assert told in words
    for option in ("--profile", "--submission", "--port", "--seed"):
        assert option in shown


def test_the_feed_prints_lines_in_time_order_once_held_long_enough() -> None:
    printed: list[str] = []
    feed = Feed(origin=100.0, write=printed.append)
    feed.add(101.0, "app", "second")
    feed.add(100.5, "llm", "first")
    feed.add(103.0, "user", "later")
    feed.flush(until=102.0)
    assert printed == ["    0.50s  llm   first", "    1.00s  app   second"]
    feed.add(100.8, "app", "late")  # came after a later line was printed: shown at that line's time
    feed.flush()
    assert printed[2:] == ["    1.00s  app   late", "    3.00s  user  later"]


def test_the_feed_cleans_what_the_app_wrote_as_the_grader_does() -> None:
    printed: list[str] = []
    feed = Feed(origin=0.0, write=printed.append)
    feed.add(1.0, "app", "\x1b[2J\x1b]0;title\x07cleared\rscreen\x00")
    feed.flush()
    assert printed == ["    1.00s  app   clearedscreen"]

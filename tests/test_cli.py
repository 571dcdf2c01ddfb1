"""The faultfirst command as a person runs it: help, the fake-llm server, a clean Ctrl-C."""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness import cli
from harness.grading import reports
from harness.grading.results import Status

from grades import new_grade, result

COMMAND = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_the_commands_and_their_options() -> None:
    top = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    assert "fake-llm" in top.stdout
    sub = subprocess.run([*COMMAND, "fake-llm", "--help"], capture_output=True, text=True, check=True)
    for option in ("--port", "--profile", "--seed", "--models", "--api-key"):
        assert option in sub.stdout


class Running:
    """A faultfirst command running in the background, read line by line, stopped with Ctrl-C."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, to kill with its children
        )

    def read_until(self, pattern: str) -> re.Match[str]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"the command ended before printing {pattern!r}")

    def interrupt(self) -> tuple[str, str]:
        """Ctrl-C; a command that does not stop within 10 s fails the test, and is killed with
        what it started (its process group), so that nothing outlives the test."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()
            raise


ASK = {"model": "fake-large", "messages": [{"role": "user", "content": "hi"}]}


def test_fake_llm_serves_prints_each_request_and_stops_on_ctrl_c() -> None:
    command = Running("fake-llm", "--profile", "instant")
    try:
        base_url = command.read_until(r"(http://127\.0\.0\.1:\d+/v1)").group(1)
        assert httpx.post(f"{base_url}/chat/completions", json=ASK).status_code == 200
        command.read_until(r"#1 +fake-large +json +ok +-> 200 completed")
    finally:
        out, err = command.interrupt()
    assert command.process.returncode == 0, err
    assert "stopped." in out
    assert "Traceback" not in err


def test_play_runs_the_app_against_the_fake_and_shows_its_calls() -> None:
    command = Running("play", "--profile", "instant", "--submission", str(ROOT))
    try:
        page = command.read_until(r"open +(http://127\.0\.0\.1:\d+)/").group(1)
        assert "<form" in httpx.get(page).text
        answer = httpx.post(f"{page}/api/answer", json={"question": "What about retrieval?"})
        assert answer.status_code == 200
        command.read_until(r"llm   #1 +fake-large +json +starts \(fault: ok\)$")
        command.read_until(r"llm   #1 +fake-large +json +-> 200 completed, \d+ tokens in")
    finally:
        out, err = command.interrupt()
    assert command.process.returncode == 0, err
    assert "stopped." in out


@pytest.mark.parametrize("option", ["--submission", "--app"])  # --app: its old name
def test_play_with_an_app_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, option: str
) -> None:
    (tmp_path / "exercise_app").mkdir()
    (tmp_path / "exercise_app" / "__init__.py").write_text("")
    (tmp_path / "exercise_app" / "app.py").write_text("import a_library_nobody_installed\n")
    result = subprocess.run(
        [*COMMAND, "play", option, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    renamed = ["faultfirst: --app is now --submission; the old name goes in the next release"]
    assert result.stderr.strip().splitlines() == [
        *(renamed if option == "--app" else []),
        "faultfirst play: the app exited while starting: the app imports "
        "'a_library_nobody_installed', which is not installed: pip install it, and list it in "
        "the dependencies of your pyproject.toml (if it is not there yet) so a grader can "
        "install it too (faultfirst grade --install-deps)"
    ]


def test_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [*COMMAND, "fake-llm", "--port", port], capture_output=True, text=True, timeout=20
        )
    assert result.returncode == 2
    assert f"is port {port} free?" in result.stderr
    assert "Traceback" not in result.stderr



def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # `faultfirst table ... | head`: the reader is gone before the command writes its table.
    saved = tmp_path / "grade.json"
    grade = new_grade()
    grade.add(result("streams", Status.PASSED, task="streaming", points=3))
    saved.write_text(reports.json_text(grade, started_at=0.0))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "harness.cli", "table", str(saved)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert finished.returncode == cli.EXIT_BROKEN_PIPE, finished.stderr
    assert "Traceback" not in finished.stderr and "BrokenPipeError" not in finished.stderr


def test_a_command_imports_its_own_module_and_not_the_others() -> None:
    # Every import is paid by every call: `faultfirst grade` needs neither the fake provider, nor
    # `play`, nor the engines that export graders.
    probe = (
        "import sys; from harness import cli; cli._parser(['grade']); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('harness'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "harness.commands.grade" in loaded
    for other in ("harness.fake_llm", "harness.commands.play", "harness.engines.gradescope"):
        assert other not in loaded, other


def test_with_no_command_named_the_help_lists_every_command() -> None:
    listed = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    for name in cli.COMMANDS:
        assert name in listed.stdout, name

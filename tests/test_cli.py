"""The faultfirst command as a person runs it: help, the fake-llm server, a clean Ctrl-C."""

import re
import signal
import socket
import subprocess
import sys

import httpx

COMMAND = [sys.executable, "-m", "harness.cli"]


def test_help_lists_the_commands_and_their_options() -> None:
    top = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    assert "fake-llm" in top.stdout
    sub = subprocess.run([*COMMAND, "fake-llm", "--help"], capture_output=True, text=True, check=True)
    for option in ("--port", "--profile", "--seed", "--models", "--api-key"):
        assert option in sub.stdout


def test_fake_llm_serves_prints_each_request_and_stops_on_ctrl_c() -> None:
    with subprocess.Popen(
        [*COMMAND, "fake-llm", "--profile", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            banner = [process.stdout.readline() for _ in range(6)]
            base_url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", "".join(banner)).group(1)
            body = {"model": "fake-large", "messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(f"{base_url}/chat/completions", json=body).status_code == 200
            line = process.stdout.readline()
            assert "#1" in line and "fake-large" in line and "200 completed" in line
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped." in out
    assert "Traceback" not in err


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

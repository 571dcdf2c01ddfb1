"""How long the fake LLM provider takes to start and to stop, idle and under a stalled stream.

Not a test: a script that prints figures, for the README and for spotting a slowdown.

    python benchmarks/server_lifecycle.py [--runs 20]

The target (from the fake's first issue): start and stop well under a second, and a stop that never
waits for a stream the fake holds open (`f.stall`): the session fake is stopped at the end of every
test worker, and a grading child's at the end of every grade. Measured (2026-12-04, idle 2-core
machine): ~1.4 ms to start (worst 18 ms), ~0.2 s to stop, 0.15 s with a stream stalled (uvicorn's
shutdown pause of 0.1 s is most of it). `tests/test_server.py` checks the same behaviour without a
clock: no thread left, and a stalled stream ended by the stop itself rather than by cancelling what
is left.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.fake_llm import FakeLLM  # noqa: E402
from harness.fake_llm import faults as f  # noqa: E402

STREAM = {"model": "fake-large", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    starts, stops, stalled_stops = [], [], []
    for _ in range(args.runs):
        start, stop = _idle()
        starts.append(start)
        stops.append(stop)
        stalled_stops.append(_stalled())
    print(f"{args.runs} runs each")
    _print("start", starts)
    _print("stop, idle", stops)
    _print("stop, a stream stalled", stalled_stops)
    return 0


def _idle() -> tuple[float, float]:
    fake = FakeLLM()
    started = time.perf_counter()
    fake.start()
    start = time.perf_counter() - started
    stopped = time.perf_counter()
    fake.stop()
    return start, time.perf_counter() - stopped


def _stalled() -> float:
    with FakeLLM() as fake:
        fake.always(f.stall(after_tokens=1))
        with httpx.Client(base_url=fake.base_url) as client:
            with client.stream("POST", "/chat/completions", json=STREAM) as response:
                lines = response.iter_lines()  # kept: a discarded iterator closes the connection
                next(lines)
                stopped = time.perf_counter()
                fake.stop()
                return time.perf_counter() - stopped


def _print(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(f"  {what:<24} median {statistics.median(ms):6.1f} ms   worst {ms[-1]:6.1f} ms")


if __name__ == "__main__":
    sys.exit(main())

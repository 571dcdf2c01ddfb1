"""How much streaming load the fake LLM provider sustains on this machine.

Not a test: a script that prints figures, for the README and for spotting a slowdown.

    python benchmarks/fake_llm_throughput.py                  # 1, 50 and 200 concurrent streams
    python benchmarks/fake_llm_throughput.py --levels 200 --tokens 300 --token-delay 0.01
    python benchmarks/fake_llm_throughput.py --aimock FOLDER    # @copilotkit/aimock, the same way

The issue's target, on the 2-core machine: 200 concurrent streams, >= 5,000 tokens/s in total,
< 5 ms added latency per token. Then at most 40 us of server CPU per token at 200 streams, which
was aimock's figure on the same machine and workload: a machine's speed varies from day to day, so
`--aimock` measures it again beside the fake, in the same session.

How it measures. The fake (`FakeLLM`, uvicorn in its own thread) runs in this process, which does
nothing else while a level runs. The load comes from a second process (multiprocessing, "spawn"),
so the clients' CPU never competes with the server's thread for this process's GIL; on two cores
each side gets one. The default client is bare asyncio connections with the HTTP/1.1 request
written by hand and the SSE scanned without JSON decoding: `--client httpx` (httpx.AsyncClient
with a pool as large as the level, same scanning) costs 2.5x or more CPU per token (measured:
~40 us against >= 100 us) and saturates its core at 200 streams, so its figures measure the
client's lag as much as the server's.

At each level, N streams start together, each asking for `--tokens` tokens `--token-delay` apart
(`fake.always(f.ok(tokens=..., token_delay=...))`, no jitter), so N streams offer
N / token_delay tokens/s. Figures per level:

- completed: streams that got every token and `[DONE]` (of N); peak open: most open at once;
- tokens/s: tokens delivered to the clients per second in the steady window, while all N streams
  were open: from 10 token delays after the last stream got its first token (N connections opened
  at once are a storm the server needs ~0.1-0.2 s to catch up from at 200 streams) to the moment
  the first stream got its last token;
- added latency per token, in that window: the client-observed gap between two consecutive tokens
  of a stream less the configured token delay (mean, p99). The fake schedules tokens against the
  clock, so a late token does not push back the next one and the mean gap stays near 0 by
  construction; hence also "late": how far each token came behind its stream's own schedule
  (the stream's most punctual token sets the schedule), mean and p99; and the worst gap of the
  whole run, start included;
- CPU as % of one core: the server (this process: the server thread, the main thread only
  waits), the client process, and every other process on the machine (from /proc/stat): a level
  that ran beside someone else's load is flagged, its figures understate the fake;
- server CPU per token: the server's CPU seconds over the whole load (start-up storm included)
  divided by the tokens the clients received, in microseconds: what one streamed token costs the
  fake, whatever the level's token rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

TARGET_STREAMS = 200
TARGET_TOKENS_PER_S = 5_000
TARGET_ADDED_MS = 5.0
SETTLE_TOKENS = 10  # token delays after the start-up storm before the steady window opens
OTHERS_WARNING = 10.0  # % of a core used by other processes that makes a level's figures suspect


@dataclass
class LevelResult:
    streams: int
    completed: int
    peak_open: int
    errors: list[str]
    window_s: float
    window_tokens: int
    total_tokens: int
    added_mean_ms: float
    added_p99_ms: float
    late_mean_ms: float
    late_p99_ms: float
    worst_ms: float
    client_cpu_s: float
    load_wall_s: float


# -- the client process ----------------------------------------------------------------------------


def client_main(
    conn: typing.Any, base_url: str, streams: int, tokens: int, token_delay: float, client: str
) -> None:
    """Entry point of the load process: wait for "go", run one level, send back a `LevelResult`."""
    result = asyncio.run(_run_level(conn, base_url, streams, tokens, token_delay, client))
    conn.send(result)
    conn.close()


USER = "Summarise the benchmark abstracts."
BODY = {"model": "fake-large", "stream": True, "messages": [{"role": "user", "content": USER}]}


class _Load:
    """What the streams of one level share: how many are open, and what went wrong."""

    def __init__(self) -> None:
        self.open = 0
        self.peak_open = 0
        self.errors: list[str] = []

    def opened(self) -> None:
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)


def _take_events(buffer: bytes, arrivals: list[float], at: float) -> tuple[bytes, bool]:
    """Split complete SSE events off `buffer`: each token event notes its arrival time `at`.

    Token chunks are ``data: {..."delta":{"content":"..."}...}``; the first chunk has a role and
    the last an empty delta, neither is a token. No JSON decoding: the client must stay cheap.
    Returns the incomplete rest and whether ``[DONE]`` came.
    """
    *events, rest = buffer.split(b"\n\n")
    done = False
    for event in events:
        if b'"delta":{"content":' in event:
            arrivals.append(at)
        elif b"data: [DONE]" in event:
            done = True
    return rest, done


class _RawStream(asyncio.Protocol):
    """One streamed request over a bare asyncio connection: HTTP/1.1 written by hand, the chunked
    body scanned as it comes (chunk-size lines never contain a blank line, so they cannot fake or
    split an event)."""

    def __init__(self, request: bytes, load: _Load) -> None:
        self.request = request
        self.load = load
        self.arrivals: list[float] = []
        self.buffer = b""
        self.status: int | None = None
        self.done = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        self.transport.write(self.request)
        self.load.opened()

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        buffer = self.buffer + data
        if self.status is None:
            head, blank, buffer = buffer.partition(b"\r\n\r\n")
            if not blank:
                self.buffer = head
                return
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200:
                self.load.errors.append(f"status {self.status}")
                self.transport.close()
                return
        self.buffer, done = _take_events(buffer, self.arrivals, at)
        if done:
            self.done = True
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.open -= 1
        if exc is not None:
            self.load.errors.append(f"{type(exc).__name__}: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)


async def _raw_stream(host: str, port: int, path: str, load: _Load) -> tuple[list[float], bool]:
    body = json.dumps(BODY).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_connection(lambda: _RawStream(request, load), host, port)
    except OSError as exc:
        load.errors.append(f"connect: {exc}")
        return [], False
    await protocol.closed
    return protocol.arrivals, protocol.done


async def _httpx_stream(client: typing.Any, load: _Load) -> tuple[list[float], bool]:
    import httpx

    arrivals: list[float] = []
    done = False
    buffer = b""
    try:
        async with client.stream("POST", "/chat/completions", json=BODY) as response:
            load.opened()
            try:
                if response.status_code != 200:
                    load.errors.append(f"status {response.status_code}")
                    return arrivals, False
                async for data in response.aiter_raw():
                    buffer, ended = _take_events(buffer + data, arrivals, time.perf_counter())
                    done = done or ended
            finally:
                load.open -= 1
    except httpx.HTTPError as exc:
        load.errors.append(f"{type(exc).__name__}: {exc}")
    return arrivals, done


async def _run_level(
    conn: typing.Any, base_url: str, streams: int, tokens: int, token_delay: float, client: str
) -> LevelResult:
    import httpx

    load = _Load()
    url = urllib.parse.urlsplit(base_url)
    host, port, path = url.hostname or "127.0.0.1", url.port or 80, f"{url.path}/chat/completions"
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        conn.send("ready")
        conn.recv()  # "go": the server side has taken its CPU reading
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if client == "raw":
            runs = [_raw_stream(host, port, path, load) for _ in range(streams)]
        else:
            runs = [_httpx_stream(http, load) for _ in range(streams)]
        results = await asyncio.gather(*runs)
        client_cpu, load_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        conn.send("done")  # before the statistics below, which are no part of the load
    results = [(arrivals, done and len(arrivals) == tokens) for arrivals, done in results]
    peak_open, errors = load.peak_open, load.errors

    per_stream = [arrivals for arrivals, _ in results if arrivals]
    completed = sum(1 for _, ok in results if ok)
    total_tokens = sum(len(a) for a in per_stream)
    # The steady window: every stream open and streaming, and the connection storm of the start
    # over: from SETTLE_TOKENS token delays after the last stream got its first token (the server
    # catches up with the tokens the storm delayed) to when the first stream got its last token.
    settle = SETTLE_TOKENS * token_delay
    window_start = max(a[0] for a in per_stream) + settle if per_stream else 0.0
    window_end = min(a[-1] for a in per_stream) if per_stream else 0.0
    window_tokens = sum(1 for a in per_stream for t in a if window_start <= t <= window_end)
    added: list[float] = []  # gap between consecutive tokens, less the delay, in the window
    late: list[float] = []  # how far behind its stream's own schedule a token came, in the window
    worst = 0.0  # the largest added gap of the whole run, start included
    for arrivals in per_stream:
        anchor = min(t - i * token_delay for i, t in enumerate(arrivals))  # the stream's schedule
        for i, (a, b) in enumerate(zip(arrivals, arrivals[1:]), start=1):
            worst = max(worst, b - a - token_delay)
            if window_start <= a and b <= window_end:
                added.append(b - a - token_delay)
                late.append(b - anchor - i * token_delay)
    added.sort()
    late.sort()
    return LevelResult(
        streams=streams,
        completed=completed,
        peak_open=peak_open,
        errors=errors[:5],
        window_s=max(0.0, window_end - window_start),
        window_tokens=window_tokens,
        total_tokens=total_tokens,
        added_mean_ms=_ms(statistics.fmean(added) if added else None),
        added_p99_ms=_ms(_percentile(added, 0.99)),
        late_mean_ms=_ms(statistics.fmean(late) if late else None),
        late_p99_ms=_ms(_percentile(late, 0.99)),
        worst_ms=worst * 1e3,
        client_cpu_s=client_cpu,
        load_wall_s=load_wall,
    )


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1e3


def _percentile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


# -- the server process (this one) -----------------------------------------------------------------


class Server(typing.Protocol):
    """What a level needs of the provider it loads: where it serves, how to make it stream
    `tokens` tokens `token_delay` apart, and the CPU it has used so far."""

    base_url: str

    def prepare(self, tokens: int, token_delay: float) -> None: ...

    def cpu_seconds(self) -> float: ...


class OurFake:
    """The fake, in this process: its CPU is this process's, whose main thread only waits."""

    def __init__(self, fake: typing.Any) -> None:
        self.fake = fake
        self.base_url = fake.base_url

    def prepare(self, tokens: int, token_delay: float) -> None:
        from harness.fake_llm import faults as f

        self.fake.reset()
        self.fake.always(f.ok(tokens=tokens, token_delay=token_delay))

    def cpu_seconds(self) -> float:
        return time.process_time()


class Aimock:
    """`@copilotkit/aimock` (`npm install @copilotkit/aimock` in FOLDER), run by node on the same
    workload: a fixture of `tokens` five-character chunks, each `token_delay` after the last
    (``--latency``; aimock waits that long before its role chunk too). Its CPU is read from
    /proc, its threads included."""

    def __init__(self, folder: Path, tokens: int, token_delay: float) -> None:
        cli = folder / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
        if not cli.is_file():
            raise SystemExit(f"no aimock in {folder}: run `npm install @copilotkit/aimock` there")
        self._folder = tempfile.TemporaryDirectory()
        fixture = Path(self._folder.name) / "fixture.json"
        answer = {"match": {"userMessage": USER}, "response": {"content": "word " * tokens}}
        fixture.write_text(json.dumps({"fixtures": [answer]}))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [
                *("node", str(cli), "--port", str(port), "--fixtures", str(fixture)),
                *("--latency", f"{token_delay * 1e3:g}", "--chunk-size", "5"),
                *("--log-level", "silent"),
            ],
            stdin=subprocess.DEVNULL,
        )
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.workload = (tokens, token_delay)
        try:
            self._wait_listening(port)
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"aimock exited with status {self.process.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("aimock did not listen within 30 s")

    def prepare(self, tokens: int, token_delay: float) -> None:
        assert (tokens, token_delay) == self.workload, "aimock serves the workload it started with"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._folder.cleanup()


def run_level(
    server: Server, streams: int, tokens: int, token_delay: float, client: str = "raw"
) -> tuple[LevelResult, float, float | None, float]:
    """One level: a fresh client process, the server's CPU use measured around its load.

    Returns the client's figures, the server's CPU and the CPU that other processes used meanwhile
    (both in % of one core; the latter None where /proc/stat is missing): on a shared machine, a
    level that ran beside someone else's load says so. Last, the server's CPU seconds per token
    delivered, in microseconds (nan if none came).
    """
    server.prepare(tokens, token_delay)
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    process = context.Process(
        target=client_main,
        args=(there, server.base_url, streams, tokens, token_delay, client),
        daemon=True,
    )
    process.start()
    try:
        if not here.poll(60) or here.recv() != "ready":
            raise RuntimeError("the client process did not start")
        busy0, cpu0, wall0 = _machine_busy(), server.cpu_seconds(), time.perf_counter()
        here.send("go")
        # Generous: the level lasts tokens x token_delay plus the ramp; a stuck run still ends.
        if not here.poll(tokens * token_delay * 5 + 60) or here.recv() != "done":
            raise RuntimeError("the client process did not finish")
        busy1, cpu1, wall1 = _machine_busy(), server.cpu_seconds(), time.perf_counter()
        if not here.poll(60):
            raise RuntimeError("the client process sent no figures")
        result: LevelResult = here.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    server_cpu_pct = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    us_per_token = 1e6 * (cpu1 - cpu0) / result.total_tokens if result.total_tokens else math.nan
    others_pct = None
    if busy0 is not None and busy1 is not None:
        others = (busy1 - busy0) - (cpu1 - cpu0) - result.client_cpu_s
        others_pct = max(0.0, 100 * others / (wall1 - wall0))
    return result, server_cpu_pct, others_pct, us_per_token


def _machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), else None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def timer_floor(seconds: float = 1.0, step: float = 0.005) -> tuple[float, float]:
    """How late `asyncio.sleep` wakes on this machine when idle (p50, p99 in ms): no server can
    pace tokens more precisely than this, and the client's wake-ups add as much again."""

    async def measure() -> list[float]:
        late = []
        for _ in range(int(seconds / step)):
            started = time.perf_counter()
            await asyncio.sleep(step)
            late.append(time.perf_counter() - started - step)
        return sorted(late)

    late = asyncio.run(measure())
    return late[len(late) // 2] * 1e3, (_percentile(late, 0.99) or 0.0) * 1e3


def tokens_per_s(result: LevelResult) -> float:
    return result.window_tokens / result.window_s if result.window_s else 0.0


def verdict(result: LevelResult, token_delay: float) -> str:
    """PASS when every stream completed, the tokens offered were delivered (>= 5,000/s where the
    level offers that much) and tokens came < 5 ms late, on average and at the p99."""
    offered = result.streams / token_delay
    wanted = min(TARGET_TOKENS_PER_S, 0.95 * offered)  # 1 or 50 streams cannot offer 5,000/s
    mean = max(abs(result.added_mean_ms), result.late_mean_ms)
    p99 = max(result.added_p99_ms, result.late_p99_ms)
    tps = tokens_per_s(result)
    checks = [
        (result.completed == result.streams, f"{result.completed}/{result.streams} streams"),
        (tps >= wanted, f"{tps:,.0f} tokens/s (>= {wanted:,.0f})"),
        (mean < TARGET_ADDED_MS, f"{mean:.2f} ms added per token on average (< 5)"),
    ]
    p99_text = f"{p99:.2f} ms at the p99"
    failed = [text for ok, text in checks if not ok]
    if failed:
        return "MISS: " + "; ".join(failed) + f"; {p99_text}"
    summary = "; ".join(text for _, text in checks)
    if p99 >= TARGET_ADDED_MS:
        return f"PASS on the mean, p99 OVER {TARGET_ADDED_MS:g} ms: {summary}; {p99_text}"
    return f"PASS: {summary}; {p99_text} (< {TARGET_ADDED_MS:g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the fake LLM provider: concurrent streams, tokens/s and added latency "
        "per token, with the server and the load in two processes.",
    )
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 50, 200],
        help="comma-separated numbers of concurrent streams (default: 1,50,200)",
    )
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream (default: 200)")
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.02,
        help="seconds between tokens of a stream (default: 0.02, i.e. 50 tokens/s per stream)",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="the load's HTTP client: bare asyncio connections (default; 2.5x cheaper per token, "
        "so the client does not saturate its core at 200 streams) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--aimock",
        type=Path,
        metavar="FOLDER",
        help="measure @copilotkit/aimock instead of the fake, on the same workload and client: "
        "FOLDER is where `npm install @copilotkit/aimock` was run (node must be on PATH)",
    )
    args = parser.parse_args(argv)
    if args.tokens < 3 * SETTLE_TOKENS or args.token_delay <= 0 or any(n < 1 for n in args.levels):
        parser.error(f"need --tokens >= {3 * SETTLE_TOKENS}, --token-delay > 0 and levels >= 1")

    from harness.fake_llm import FakeLLM

    floor_p50, floor_p99 = timer_floor()
    print(
        f"{'aimock' if args.aimock else 'fake LLM'} throughput: {args.tokens} tokens per stream, "
        f"{args.token_delay * 1e3:g} ms "
        f"apart ({1 / args.token_delay:g} tokens/s per stream); {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}; server and {args.client} clients in two processes, loopback"
    )
    print(
        f"timer floor: an idle asyncio.sleep wakes {floor_p50:.2f} ms late (p50), "
        f"{floor_p99:.2f} ms (p99) on this machine"
    )
    server: Server
    if args.aimock is not None:
        server = aimock = Aimock(args.aimock, args.tokens, args.token_delay)
        stop = aimock.stop
    else:
        fake = FakeLLM()
        fake.start()
        server, stop = OurFake(fake), fake.stop
    try:
        rows = [
            run_level(server, streams, args.tokens, args.token_delay, args.client)
            for streams in args.levels
        ]
    finally:
        stop()

    print(
        "\nPer level: streams completed (of those started) and the most open at once; in the steady"
        "\nwindow (all streams open, start-up storm over), tokens/s delivered and, per token, the"
        "\ngap to the previous one less the token delay ('added') and how late it came on its"
        "\nstream's schedule ('late'); the worst gap of the whole run, start-up included; CPU in %"
        "\nof one core, 'others' being every other process on the machine; the server's CPU per"
        "\ntoken delivered (whole load, start-up included).\n"
    )
    header = (
        f"{'streams':>7} {'completed':>9} {'peak open':>9} {'offered/s':>9} {'tokens/s':>9} "
        f"{'added mean':>10} {'added p99':>9} {'late mean':>9} {'late p99':>8} {'worst gap':>9} "
        f"{'server CPU':>10} {'client CPU':>10} {'others CPU':>10} {'server CPU/token':>16}"
    )
    print(header)
    print("-" * len(header))
    for result, server_cpu, others_cpu, us_per_token in rows:
        client_cpu = 100 * result.client_cpu_s / result.load_wall_s if result.load_wall_s else 0.0
        others = "n/a" if others_cpu is None else f"{others_cpu:.0f}%"
        print(
            f"{result.streams:>7} {result.completed:>9} {result.peak_open:>9} "
            f"{result.streams / args.token_delay:>9,.0f} {tokens_per_s(result):>9,.0f} "
            f"{result.added_mean_ms:>+7.2f} ms {result.added_p99_ms:>6.2f} ms "
            f"{result.late_mean_ms:>6.2f} ms {result.late_p99_ms:>5.2f} ms "
            f"{result.worst_ms:>6.1f} ms {server_cpu:>9.0f}% {client_cpu:>9.0f}% {others:>10} "
            f"{us_per_token:>13.1f} µs"
        )
    print()
    for result, _, others_cpu, us_per_token in rows:
        print(f"{result.streams:>4} streams: {verdict(result, args.token_delay)}")
        print(f"      server CPU µs per token: {us_per_token:.1f}")
        if others_cpu is not None and others_cpu > OTHERS_WARNING:
            print(
                f"      other processes used {others_cpu:.0f}% of a core meanwhile: these figures "
                "understate the fake; rerun on a quiet machine"
            )
        for error in result.errors:
            print(f"      client error: {error}")
    at_target = [row for row in rows if row[0].streams >= TARGET_STREAMS]
    if at_target:
        result = at_target[-1][0]
        outcome = verdict(result, args.token_delay).split(":")[0]
        print(
            f"\nissue target ({TARGET_STREAMS} concurrent streams, >= {TARGET_TOKENS_PER_S:,} "
            f"tokens/s, < {TARGET_ADDED_MS:g} ms added per token), at {result.streams} streams: "
            f"{outcome}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start the app under test in a child process, on loopback, and stop it cleanly.

The parent binds 127.0.0.1 on a free port and hands the listening socket to uvicorn in the child
(``--fd``), so the port is known before the child starts and no other process can take it in
between. The child gets a minimal environment: the harness's settings, not the grader's secrets.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import typing
from pathlib import Path

import httpx

from . import isolation, sandbox
from .server import HOST
from .template import ForkedProcess, Template, TemplateError

if typing.TYPE_CHECKING:  # only `faultfirst play` observes an app
    from . import departures

APP = "exercise_app.app:app"

# What the harness tells the app (see exercise_app/settings.py): short enough that every scenario
# runs in seconds, long enough that a correct app on a loaded machine never trips them by chance.
SCENARIO_SETTINGS = {
    "LLM_API_KEY": "sk-faultfirst",
    "PRIMARY_MODEL": "fake-large",
    "FALLBACK_MODEL": "fake-small",
    "LLM_CONNECT_TIMEOUT": "1.0",
    "LLM_READ_TIMEOUT": "2.0",
    "REQUEST_DEADLINE": "4.0",
    "RETRY_BASE_DELAY": "0.1",
    "RETRY_MAX_DELAY": "0.8",
    "MAX_ATTEMPTS": "3",
    "MAX_CONCURRENCY": "4",
    # Out of reach: the breaker opens only in its own scenarios (timing.BREAKER). Elsewhere,
    # concurrent requests failing together would open it at a moment the scheduler picks, and
    # which of them still reached the primary, and so the grade, would change from run to run.
    "BREAKER_FAILURES": "1000",
    "BREAKER_COOL_DOWN": "30.0",
}

# What the app and the grading run keep of the environment they are started from: no more.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

# One for every loopback client of the harness. Plain HTTP never uses it, but httpx builds a
# fresh context, parsing certifi's bundle, for each client not handed one (encode/httpx#3627):
# 30-60 ms of CPU when idle, far more on a loaded machine: for every app started, and before
# each scenario's request leaves, inside the time a scenario holds against the app.
SSL_CONTEXT = ssl.create_default_context()
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^'.]+)")
_EXPLAINED = re.compile(r"the app imports '([^']+)', which is not installed")


class AppDidNotStart(RuntimeError):
    """The app failed to import, crashed or never answered; the message is one line for people."""


class AppProcess:
    """The app in `folder` (which holds the ``exercise_app`` package), served by uvicorn.

    With `limits`, the child keeps them (`sandbox`), and a watch stops the app as soon as it has
    more processes than they allow. `python` is the interpreter to run it with (one with
    the submission's own dependencies installed, say). `box`: the kind of box it runs in, of
    `isolation`'s levels (None: none). With a `template` (`harness.hosting.template`), an app
    on the grader's own Python with limits, boxed as root or not at all, is forked from it warm
    instead of started afresh: the same app, for a fork instead of an interpreter's start.

    With an `observer` (`faultfirst play`'s, never a grade's), the app's output goes to it line by
    line as well as to the log, and the app runs wrapped by `departures`, which reports each user
    who leaves before their answer ended. Only for an app started afresh, unboxed, unlimited."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        settings: typing.Mapping[str, str],
        *,
        app: str = APP,
        port: int = 0,
        limits: sandbox.Limits | None = None,
        python: str = sys.executable,
        box: str | None = None,
        template: Template | None = None,
        observer: departures.Observer | None = None,
    ) -> None:
        if observer is not None and (box is not None or limits is not None or template is not None):
            raise ValueError("an observed app runs on its own: no box, limits or template")
        self.folder = Path(folder).resolve()
        self.port = port
        self.settings = dict(settings)
        self.app = app
        self.limits = limits
        self.python = python
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | ForkedProcess | None = None
        self._template = template
        self._log = tempfile.TemporaryFile()
        self._log_lock = threading.Lock()  # an observer's reader writes it while `output` reads
        self._observer = observer
        self._stopping = threading.Event()
        self._limit_hit: str | None = None
        self.box = box
        self._lease: isolation.Lease | None = None
        self._home: isolation.AppHome | None = None  # the uid level's copy of the folder
        if box is not None:
            self.limits = limits or sandbox.Limits()

    def start(self, timeout: float = 15.0) -> None:
        """Start the app and wait until ``GET /healthz`` answers, or raise `AppDidNotStart`."""
        if not (self.folder / self.app.split(".")[0]).is_dir():
            raise AppDidNotStart(f"{self.folder} has no {self.app.split('.')[0]}/ folder to run")
        if self.box in (isolation.BOXED, isolation.UID):
            try:
                self._lease = isolation.Lease.take()
                if self.box == isolation.UID:
                    self._home = isolation.AppHome(self._lease.uid, self.folder)
            except (isolation.IsolationError, OSError) as error:
                raise AppDidNotStart(f"the grader could not box the app: {error}") from None
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((HOST, self.port))
        self._socket.listen(128)
        fd = self._socket.fileno()
        if self._forks():
            self._process = self._fork()
        else:
            observer = self._observer
            self._process = subprocess.Popen(
                self._command(fd),
                cwd=self.folder,
                env=self._environment(),
                pass_fds=(fd,) if observer is None else (fd, observer.report_fd),
                stdin=subprocess.DEVNULL,
                stdout=self._log if observer is None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a stop ends the app's own children too
            )
            if observer is not None:
                assert self._process.stdout is not None
                observer.follow(self._process.stdout, self._write_log)
        if self.limits is not None:
            watch = threading.Thread(target=self._watch_processes, args=(self.limits,), daemon=True)
            watch.start()
        self._wait_until_healthy(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the app (SIGTERM, then SIGKILL after `timeout`; at once if it is 0), with every
        process it started, and free its port."""
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            if timeout > 0:
                self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._process.wait()
        if self._process is not None:
            self._signal(signal.SIGKILL)  # what the app started and left running
            sandbox.kill_session(self._process.pid)
        if self._home is not None and self._lease is not None:  # no namespace ended them all
            isolation.end_processes_of(self._lease.uid, self.python)
            self._home.remove()
        if self._lease is not None:
            self._lease.release()  # its box is gone, and every process of its uid with it
        if self._socket is not None:
            self._socket.close()
        if self._observer is not None:
            self._observer.close()
        with self._log_lock:
            self._log.close()

    def exit_reason(self, wait: float = 0.0) -> str | None:
        """Why the app ended on its own (it crashed, or broke a limit), in a sentence; None while
        it runs (after waiting up to `wait` seconds for it to end), or once `stop` was asked
        for."""
        if self._process is None or self._stopping.is_set():
            return None
        try:
            code = self._process.wait(wait)
        except subprocess.TimeoutExpired:
            return None
        if self._stopping.is_set():
            return None
        return self._why_ended(code, starting=False)

    @property
    def url(self) -> str:
        assert self._socket is not None, "start() the app first"
        return f"http://{HOST}:{self._socket.getsockname()[1]}"

    def output(self) -> str:
        """Everything the app printed so far (its log and any traceback)."""
        observer, process = self._observer, self._process
        if observer is not None and process is not None and process.poll() is not None:
            observer.drain(timeout=1.0)  # an app that has ended: what it printed last
        with self._log_lock:
            self._log.seek(0)
            return self._log.read().decode(errors="replace")

    def _write_log(self, data: bytes) -> None:
        with self._log_lock:
            if not self._log.closed:
                self._log.seek(0, os.SEEK_END)
                self._log.write(data)

    def __enter__(self) -> AppProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _uvicorn(self, fd: str) -> list[str]:
        """uvicorn's arguments: serve the app on the listening socket `fd`."""
        uvicorn = [self.app, "--fd", fd, "--no-access-log", "--log-level", "warning"]
        return [*uvicorn, "--app-dir", self._app_dir()]

    def _app_dir(self) -> str:
        """Where the app finds its folder: at ``/app`` in a box, in its own copy at the uid
        level, where it is otherwise."""
        if self._home is not None:
            return str(self._home.app)
        return "/app" if self.box is not None else str(self.folder)

    def _command(self, fd: int) -> list[str]:
        uvicorn = self._uvicorn(str(fd))
        if self.box is not None:
            assert self.limits is not None
            if self._lease is None:
                return isolation.bwrap_command(self.folder, self.python, self.limits, uvicorn)
            if self._home is not None:
                return isolation.box_command(
                    self._lease, self._home.app, self.python, self.limits, uvicorn, namespaces=False
                )
            return isolation.box_command(
                self._lease, self.folder, self.python, self.limits, uvicorn
            )
        if self._observer is not None:
            return self._observer.command(self.python, uvicorn)
        if self.limits is None:
            return [self.python, "-m", "uvicorn", *uvicorn]
        limits = [*self.limits.arguments(), f"--parent={os.getpid()}"]
        return [self.python, "-m", "harness.hosting.sandbox", *limits, "--", *uvicorn]

    def _forks(self) -> bool:
        return self._template is not None and forkable(self.python, self.box, self.limits)

    def _fork(self) -> ForkedProcess:
        assert self._template is not None and self._socket is not None and self.limits is not None
        box = None
        if self._lease is not None:
            box = isolation.box_arguments(self._lease.uid, self.folder, self.python, self.limits)
        try:
            return self._template.spawn(
                listening=self._socket.fileno(),
                output=self._log.fileno(),
                cwd=str(self.folder),
                env=self._environment(),
                box=box,
                limits=None if box else self.limits.arguments(),
                uvicorn=self._uvicorn("{fd}"),  # the number the socket gets in the app
            )
        except TemplateError as error:
            raise AppDidNotStart(f"the grader could not start the app: {error}") from None

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        if self._home is not None:
            env.update(HOME=str(self._home.tmp), TMPDIR=str(self._home.tmp))  # its own
        elif self.box is not None:
            env.update(HOME="/tmp", TMPDIR="/tmp")  # its only writable folder
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.settings)
        return env

    def _wait_until_healthy(self, timeout: float) -> None:
        def exited() -> str | None:
            assert self._process is not None
            code = self._process.poll()
            if code is None:
                return None
            return self._why_ended(code, starting=True)

        wait_until_healthy(self.url, timeout, exited, self._reason)

    def _reason(self) -> str:
        return explain(last_error_line(self.output()))

    def _why_ended(self, code: int, *, starting: bool) -> str:
        if self._limit_hit is not None:
            return self._limit_hit
        if self.box == isolation.NAMESPACES and 128 < code <= 128 + 64:
            code = 128 - code  # bubblewrap ends with 128 + the signal that ended the app
        if code < 0:
            limits = self.limits or sandbox.Limits()
            when = "while starting" if starting else "during the scenario"
            return f"the app's process ended {when}: {limits.explain_signal(-code)}"
        if starting:
            return f"the app exited while starting: {self._reason()}"
        return f"the app's process exited with code {code}: {self._reason()}"

    def _watch_processes(self, limits: sandbox.Limits) -> None:
        assert self._process is not None
        while not self._stopping.wait(0.1) and self._process.poll() is None:
            count = len(self._processes())
            if count > limits.processes:
                self._limit_hit = (
                    f"the app started more processes than the limit of {limits.processes} "
                    f"({count} at once), so it was stopped"
                )
                self._signal(signal.SIGKILL)
                sandbox.kill_session(self._process.pid)
                return

    def _processes(self) -> list[int]:
        """The app's processes: those of its uid in a root's box, those below bubblewrap's own
        in a bubblewrap box, those of its session otherwise."""
        assert self._process is not None
        if self._lease is not None:
            return isolation.processes_of(self._lease.uid)
        if self.box is not None:
            return isolation.descendants(self._process.pid)[1:]  # after bubblewrap's init
        return sandbox.session_members(self._process.pid)

    def _signal(self, signum: int) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass


def forkable(python: str, box: str | None, limits: sandbox.Limits | None) -> bool:
    """Whether such an app can be forked from a template (`template`): on Linux, on this very
    Python, with limits (a box always has them), unboxed or in a root's box. Any other starts the
    exec'd way: a bubblewrap box, or a submission's own virtualenv, whose packages it chose."""
    return (
        hasattr(os, "pidfd_open")
        and python == sys.executable
        and (limits is not None or box is not None)
        and box in (None, isolation.BOXED)
    )


def wait_until_healthy(
    url: str,
    timeout: float,
    failed: typing.Callable[[], str | None],
    reason: typing.Callable[[], str],
) -> None:
    """Poll ``GET {url}/healthz`` until it answers 200; raise `AppDidNotStart` if `failed()` says
    why the app is gone, or once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=1.0, trust_env=False, verify=SSL_CONTEXT) as client:
        while time.monotonic() < deadline:
            if (why := failed()) is not None:
                raise AppDidNotStart(why)
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise AppDidNotStart(f"the app did not answer GET /healthz within {timeout:g}s: {reason()}")


def last_error_line(output: str) -> str:
    """The last meaningful line of what an app printed, usually the exception that stopped it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["it printed nothing"])[-1]


def explain(line: str) -> str:
    """`line`, or for a module the grader's environment lacks, what to do about it."""
    missing = _MISSING_MODULE.search(line)
    if missing is None or missing.group(1) in (APP.split(".")[0], "harness", "uvicorn"):
        return line  # the candidate's own package, or the grader's: nothing to declare
    name = missing.group(1)
    return (
        f"the app imports {name!r}, which is not installed: pip install it, and list it in the "
        "dependencies of your pyproject.toml (if it is not there yet) so a grader can install "
        "it too (faultfirst grade --install-deps)"
    )


def missing_module(reason: str) -> str | None:
    """The module a reason from `explain` says the app could not import, if it says so."""
    found = _EXPLAINED.search(reason)
    return found.group(1) if found else None


# The app reaches nothing over TLS while it is graded: the fake speaks plain HTTP on loopback. Yet
# every HTTP client it builds (httpx's, the openai SDK's) loads a bundle of certificate
# authorities for TLS: 30-60 ms of CPU for each, at every app start. Pointing it at a folder of
# none (read only when a certificate is checked, which never happens) makes that nearly free.
NO_CERTIFICATES = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": "/nonexistent/faultfirst-no-certificates"}


# The one setting that differs for every app under the scenarios (`FakeLLM.url_for`).
OWN_URL = "LLM_BASE_URL"


def scenario_settings(llm_base_url: str, **overrides: str) -> dict[str, str]:
    """The settings an app gets under the scenarios, pointing at the fake provider, and the
    environment that spares it loading certificates it will never use."""
    return {**NO_CERTIFICATES, **SCENARIO_SETTINGS, OWN_URL: llm_base_url, **overrides}


class AppSettings:
    """The settings an app under test was given, typed, for scenarios to derive tolerances from.

    `environ` is what the app gets in its environment (names as in the brief)."""

    def __init__(self, environ: typing.Mapping[str, str]) -> None:
        self.environ = dict(environ)

    def _number(self, name: str) -> float:
        return float(self.environ[name])

    @property
    def primary_model(self) -> str:
        return self.environ["PRIMARY_MODEL"]

    @property
    def fallback_model(self) -> str:
        return self.environ["FALLBACK_MODEL"]

    @property
    def read_timeout(self) -> float:
        return self._number("LLM_READ_TIMEOUT")

    @property
    def request_deadline(self) -> float:
        return self._number("REQUEST_DEADLINE")

    @property
    def retry_base_delay(self) -> float:
        return self._number("RETRY_BASE_DELAY")

    @property
    def retry_max_delay(self) -> float:
        return self._number("RETRY_MAX_DELAY")

    @property
    def max_attempts(self) -> int:
        return int(self.environ["MAX_ATTEMPTS"])

    @property
    def max_concurrency(self) -> int:
        return int(self.environ["MAX_CONCURRENCY"])

    @property
    def breaker_failures(self) -> int:
        return int(self.environ["BREAKER_FAILURES"])

    @property
    def breaker_cool_down(self) -> float:
        return self._number("BREAKER_COOL_DOWN")

    def backoff(self, retry: int) -> float:
        """The wait the brief asks for before retry number `retry` (0 for the first), before
        jitter: ``min(RETRY_BASE_DELAY * 2**retry, RETRY_MAX_DELAY)``."""
        return min(self.retry_base_delay * 2.0**retry, self.retry_max_delay)

"""Apps that cost a fork, not an interpreter: a warm process that forks one per scenario.

A fresh ``python -m uvicorn`` spends ~0.35 s of CPU importing uvicorn, starlette, httpx and anyio
before it reaches the submission, once per scenario: most of a grade's CPU on two cores. So a
grading run starts one *template* (``python -m harness.hosting.template``) that imports them once
and then waits. For each app it forks a child that does what the exec'd command would have done,
from the same point on: it becomes a session of its own, takes the app's environment, folder and
output file, then either builds a box (`box`: namespaces, files, the box's uid, limits) or takes
the limits alone (`sandbox`), and runs uvicorn's own command line, which imports the submission
fresh. Nothing of a submission is ever loaded into the template, and ``random`` reseeds in each
child, so every app starts as a new process would, only warm.

The template runs the grader's own Python with the grader's packages, which it trusts; an app on
another Python (a submission's ``--install-deps`` virtualenv, whose packages the submission chose)
starts the exec'd way, since importing those packages here, as root, would run them unboxed.

The grading run talks to it over socket pairs only the two hold (`Template`), one for each of the
run's lanes (`SharedTemplate`), so that the template's imports are paid once a run, not once a
lane: a request carries the app's listening socket, its output file and a status pipe as file
descriptors, and its children hold none of those channels. When a child ends, the template
writes its exit status (negative: the signal) into that pipe; a pipe that closes without one
means the template itself was killed. The template dies with the run that started it, and each
child with the template (``PR_SET_PDEATHSIG``), so nothing outlives a grading run that was
killed.

Past `WARM`, a template imports the packages it is asked to `share`: those of the grader's own
that a submission uses and `preload` found safe to load ahead of its apps (the openai SDK costs a
fresh app more CPU than uvicorn does). It imports them in an environment stripped to what every
app has before its own settings, never with the grader's.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import io
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
import typing

from . import box, sandbox

# What a typical app imports: loaded once in the template, so that its forks start warm. The last
# ones are imported lazily, at an app's first request or first HTTP client: measured in forked
# reference apps, anyio's asyncio backend and httpcore were over half an app's start-up CPU.
WARM = (
    "anyio",
    "asyncio",
    "httpx",
    "starlette.applications",
    "starlette.requests",
    "starlette.responses",
    "starlette.routing",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "uvicorn.loops.auto",
    "uvicorn.main",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "certifi",
    "httpcore",
    "importlib.resources",
)
# What a shared package's import sees of the environment: the names every app gets alike.
SHARED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL")
MAX_FDS = 3
REPLY_TIMEOUT = 15.0  # seconds the template has to answer: it forks at once, or is stuck
PR_SET_PDEATHSIG = 1


class TemplateError(RuntimeError):
    """The template is gone, or refused a request."""


class ForkedProcess:
    """An app forked by the template, seen as a `subprocess.Popen` is: `pid` (which leads its own
    session and process group), `poll`, `wait`, `returncode`."""

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._status = status  # the read end of its status pipe
        # Held while reading it: the launcher's watch polls from its own thread.
        self._reading = threading.Lock()

    def poll(self) -> int | None:
        if not self._reading.acquire(blocking=False):
            return self.returncode  # another thread is reading it: as Popen.poll does
        try:
            return self._read(0.0)
        finally:
            self._reading.release()

    def wait(self, timeout: float | None = None) -> int:
        with self._reading:
            code = self._read(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"app {self.pid}", timeout or 0.0)
        return code

    def _read(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not select.select([self._status], [], [], timeout)[0]:
            return None
        data = os.read(self._status, 64)
        os.close(self._status)
        # No status: the template was killed, and the app with it.
        self.returncode = int(data) if data else -signal.SIGKILL
        return self.returncode

    def __del__(self) -> None:
        if self.returncode is None:
            try:
                os.close(self._status)
            except OSError:
                pass


class Template:
    """One side of a template's control channel: `spawn` apps through it. Thread-safe.

    `Template.start()` starts a template with one channel, for one grading run. A run with lanes
    starts one for all of them instead (`SharedTemplate`): each lane forks its apps through a
    channel of its own, and the template's imports are paid once, not once a lane."""

    def __init__(
        self, control: socket.socket, pidfd: int, process: subprocess.Popen[bytes] | None
    ) -> None:
        self._socket: socket.socket | None = control
        self._socket.settimeout(REPLY_TIMEOUT)
        self._pidfd = pidfd  # readable once the template has ended, whoever its parent is
        self._process = process  # None: another process started it, and reaps it
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def start(cls, share: tuple[str, ...] = ()) -> Template:
        """Start a template of this process's own, importing `share` too, and wait until it is
        ready. Call it from a thread that outlives the apps (the main one): the template dies
        when the thread that started it ends."""
        process, (channel,), pidfd = _launch(1, share)
        template = cls(channel, pidfd, process)
        with template._lock:
            template._wait_ready()
        return template

    def spawn(
        self,
        *,
        listening: int,
        output: int,
        cwd: str,
        env: dict[str, str],
        box: list[str] | None,
        limits: list[str] | None,
        uvicorn: list[str],
    ) -> ForkedProcess:
        """Fork an app serving on the socket `listening`, printing to `output`, in `cwd` with
        `env`: in a box (`box`: `box.py`'s arguments) or with `limits` (`sandbox`'s), then
        ``uvicorn UVICORN``."""
        request = {"cwd": cwd, "env": env, "box": box, "limits": limits, "uvicorn": uvicorn}
        status_read, status_write = os.pipe()
        try:
            with self._lock:
                self._wait_ready()
                assert self._socket is not None
                fds = array.array("i", [listening, output, status_write])
                message = json.dumps(request).encode()
                self._socket.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                reply = self._socket.recv(64)
        except OSError as error:
            os.close(status_read)
            raise TemplateError(f"the app template is gone ({error})") from None
        finally:
            os.close(status_write)
        if not reply.isdigit():
            os.close(status_read)
            raise TemplateError(f"the app template could not fork: {reply.decode(errors='replace')}")
        return ForkedProcess(int(reply), status_read)

    def _wait_ready(self) -> None:
        """Read the template's "ready", sent once its imports are done (under the lock)."""
        if self._socket is None:
            raise TemplateError("the app template is not running")
        if self._ready:
            return
        try:
            reply = self._socket.recv(64)
        except OSError:
            reply = b""
        if reply != b"ready":
            self.close()
            raise TemplateError("the app template did not start")
        self._ready = True

    @property
    def running(self) -> bool:
        return self._socket is not None and not select.select([self._pidfd], [], [], 0)[0]

    def close(self) -> None:
        """Close this channel; a template of this process's own ends with it."""
        if self._socket is not None:
            self._socket.close()  # the template ends when it sees every channel closed
            self._socket = None
            os.close(self._pidfd)
        if self._process is not None:
            _end(self._process)


class SharedTemplate:
    """A template with `count` control channels, for as many lanes of a grading run. It is
    started before they are forked; each lane `take`s a channel of its own and forks its apps
    through it, and the process that started it `close`s it once the lanes have ended."""

    def __init__(self, count: int, share: tuple[str, ...] = ()) -> None:
        self._process, self._channels, self._pidfd = _launch(count, share)

    def take(self, index: int) -> Template:
        """Channel `index`, for this process (a lane) alone: its copies of the others close."""
        for other, channel in enumerate(self._channels):
            if other != index:
                channel.close()
        return Template(self._channels[index], os.dup(self._pidfd), None)

    def close(self) -> None:
        """Close every channel, so that the template ends once the lanes have closed theirs,
        and wait for it."""
        for channel in self._channels:
            channel.close()
        os.close(self._pidfd)
        _end(self._process)


def _launch(
    count: int, share: tuple[str, ...]
) -> tuple[subprocess.Popen[bytes], list[socket.socket], int]:
    """A template process with `count` control channels, importing `share` too: it, our ends,
    and its pidfd."""
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(count)]
    theirs = [their.fileno() for _, their in pairs]
    shared = ["--share", ",".join(share)] if share else []
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.hosting.template", *shared, *map(str, theirs)],
            pass_fds=theirs,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
    finally:
        for _, their in pairs:
            their.close()
    return process, [ours for ours, _ in pairs], os.pidfd_open(process.pid)


def _end(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(5.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the template process -------------------------------------------------------------------------


def main(fds: list[int], share: list[str]) -> None:
    _die_with_parent()
    for name in WARM:
        __import__(name)
    if share:
        _import_shared(share)
    controls = [socket.socket(fileno=fd) for fd in fds]
    statuses: dict[int, int] = {}  # a child's pidfd -> the write end of its status pipe
    children: dict[int, int] = {}  # a child's pidfd -> its pid
    with selectors.DefaultSelector() as selector:
        for control in controls:
            with contextlib.suppress(OSError):  # a lane that died before reading it
                control.send(b"ready")
            selector.register(control, selectors.EVENT_READ)
        while controls:
            for key, _ in selector.select():
                control = key.fileobj
                if not isinstance(control, socket.socket):
                    _reap(typing.cast(int, key.fd), selector, statuses, children)
                elif not _serve_request(control, controls, selector, statuses, children):
                    selector.unregister(control)  # that grading run (or lane) is done
                    controls.remove(control)
                    control.close()


def _serve_request(
    control: socket.socket,
    controls: list[socket.socket],
    selector: selectors.BaseSelector,
    statuses: dict[int, int],
    children: dict[int, int],
) -> bool:
    try:
        message, fds = _receive(control)
    except OSError:
        return False
    if not message:
        return False  # the grading run closed its end: it is done
    listening, output, status = fds
    try:
        pid = os.fork()
    except OSError as error:
        control.send(f"fork: {error}".encode())
        for fd in fds:
            os.close(fd)
        return True
    if pid == 0:  # nothing of the template's but the socket and output: no channel, no pidfd
        for each in controls:
            each.close()
        selector.close()
        os.close(status)
        for pidfd, status_write in statuses.items():
            os.close(pidfd)
            os.close(status_write)
        _become_app(json.loads(message), listening, output)
    os.close(listening)
    os.close(output)
    pidfd = os.pidfd_open(pid)
    statuses[pidfd], children[pidfd] = status, pid
    selector.register(pidfd, selectors.EVENT_READ)
    try:
        control.send(str(pid).encode())
    except OSError:
        return False  # it has gone: its app dies with its session's end, or is killed
    return True


def _reap(
    pidfd: int,
    selector: selectors.BaseSelector,
    statuses: dict[int, int],
    children: dict[int, int],
) -> None:
    _, status = os.waitpid(children.pop(pidfd), 0)
    selector.unregister(pidfd)
    os.close(pidfd)
    status_write = statuses.pop(pidfd)
    try:
        os.write(status_write, str(os.waitstatus_to_exitcode(status)).encode())
    except OSError:
        pass  # nobody waits for it any more
    os.close(status_write)


def _receive(control: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    message, ancillary, _, _ = control.recvmsg(1 << 20, socket.CMSG_LEN(MAX_FDS * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def _become_app(request: dict[str, typing.Any], listening: int, output: int) -> typing.NoReturn:
    """In the forked child: what ``[box.py|sandbox] ... -- uvicorn ARGS`` would do, in-process."""
    try:
        os.setsid()
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        # As a fresh Python has them, whatever the grading run ignores: uvicorn sets its own.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        uvicorn = [argument.replace("{fd}", str(listening)) for argument in request["uvicorn"]]
        parent = f"--parent={os.getppid()}"
        if request["box"] is not None:
            box.main([*request["box"], parent, "--", *uvicorn], serve=_serve)
        else:
            sandbox.main([*request["limits"], parent, "--", *uvicorn], serve=_serve)
    except BaseException as error:  # noqa: BLE001 - say why on the app's output, as a crash would
        print(f"faultfirst: the app could not start: {error}", file=sys.stderr, flush=True)
        os._exit(125)
    os._exit(0)


def _serve(arguments: list[str], app_dir: str) -> typing.NoReturn:
    """Become ``python -m uvicorn ARGUMENTS`` run from `app_dir`, unbuffered as the launcher asks
    (``PYTHONUNBUFFERED``), with everything imported already."""
    import uvicorn.main

    sys.argv = ["uvicorn", *arguments]
    sys.path[0] = app_dir  # where ``python -m`` puts the working folder
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), write_through=True)
        setattr(sys, name, stream)
    code: int = 0
    try:
        uvicorn.main.main(args=arguments, prog_name="uvicorn")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:  # as Python ends on an exception: its traceback, and status 1
        traceback.print_exc()
        code = 1
    os._exit(code)


def _import_shared(names: list[str]) -> None:
    """Import a submission's shared packages as its apps would, in the environment they all have
    before their settings: nothing of the grader's own (the apps' environments replace it)."""
    kept = {name: os.environ[name] for name in SHARED_ENVIRONMENT if name in os.environ}
    os.environ.clear()
    os.environ.update(kept)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - each app imports it itself, and meets the same error
            pass


def _die_with_parent() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def _arguments(arguments: list[str]) -> tuple[list[int], list[str]]:
    """``[--share NAME,...] FD...``: the control channels' descriptors, and what to share."""
    share: list[str] = []
    if arguments[:1] == ["--share"]:
        share, arguments = arguments[1].split(","), arguments[2:]
    return [int(argument) for argument in arguments], share


if __name__ == "__main__":
    main(*_arguments(sys.argv[1:]))

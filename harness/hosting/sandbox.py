"""Limits on what the app under test may take of the machine, and the child process that keeps them.

`faultfirst grade` runs code it has never seen. The app's child process starts here
(``python -m harness.hosting.sandbox [limits] -- [uvicorn arguments]``), applies the limits to
itself before it imports the submission, then runs uvicorn. A leak, a busy loop or a runaway spawner
then ends that app, not the grader, and the grader can say which limit it hit.

These limits fence off mistakes. Keeping a hostile app from the grader is `isolation`'s job:
where it can, the app runs boxed (`box`, which keeps the same limits), not here.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import runpy
import signal
import sys
import time
import typing
from dataclasses import dataclass

MiB = 2**20

# Threads count as processes for RLIMIT_NPROC: room for the app's worker threads (anyio lends up
# to 40 to sync code), besides the processes `Limits.processes` allows.
_THREAD_ROOM = 64


@dataclass(frozen=True)
class Limits:
    """What one app may use. The defaults leave a correct app (~60 MB, a few CPU seconds over a
    whole grade, one process) far inside them."""

    memory_mb: int = 1024  # address space of each of its processes
    cpu_seconds: int = 300  # CPU time of each of its processes
    processes: int = 32  # processes alive at once, the app itself included

    def arguments(self) -> list[str]:
        """These limits as `main`'s command-line options."""
        return [
            f"--memory-mb={self.memory_mb}",
            f"--cpu-seconds={self.cpu_seconds}",
            f"--processes={self.processes}",
        ]

    def explain_signal(self, signum: int) -> str:
        """Why a process that keeps these limits may have died of `signum`."""
        if signum == signal.SIGXCPU:
            return f"it used more than {self.cpu_seconds}s of CPU time (a busy loop?)"
        if signum == signal.SIGKILL:
            return "it was killed (SIGKILL): out of memory, or stopped by the grader"
        return f"it was killed by {signal.Signals(signum).name}"


class Option(typing.NamedTuple):
    """One limit as a command-line option, for both `faultfirst grade` and the pytest plugin."""

    field: str  # of `Limits`
    flag: str  # the option is ``--FLAG`` (``--faultfirst-FLAG`` in pytest)
    metavar: str
    help: str


OPTIONS = (
    Option("memory_mb", "memory", "MB", "memory each app process may map"),
    Option("cpu_seconds", "cpu", "SECONDS", "CPU time each app process may use"),
    Option("processes", "processes", "N", "processes an app may have at once"),
)


def apply(limits: Limits, *, parent: int | None = None, in_box: bool = False) -> None:
    """Apply `limits` to this process (and so to what it starts), and make it die with its
    parent (`parent`, its pid: when not given, any parent but init): an app must not outlive a
    grader that was killed. `in_box`: in a bubblewrap box,
    which ends the app with the grader itself, and shows too few of the user's processes here
    to set RLIMIT_NPROC from (the grader's watch keeps that limit alone)."""
    _set(resource.RLIMIT_AS, limits.memory_mb * MiB)
    # The soft limit sends SIGXCPU, which kills; the hard one, a little later, SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    _set(resource.RLIMIT_CORE, 0)
    if in_box:
        return
    # RLIMIT_NPROC counts every task of this user (root is exempt), so it is set above what the
    # user runs already; `session_members` catches what it cannot.
    _set(resource.RLIMIT_NPROC, _tasks_of(os.getuid()) + limits.processes + _THREAD_ROOM)
    _die_with_parent(parent)


def session_members(session: int) -> list[int]:
    """The processes of `session` (Linux's /proc; none found elsewhere). The app leads a session
    of its own, so these are the app and everything it started that did not leave it."""
    members = []
    for pid in pids():
        fields = stat_fields(pid)
        if fields is None:
            continue  # it ended meanwhile
        state, session_id = fields[0], int(fields[3])  # then ppid, pgrp, session...
        if session_id == session and state != b"Z":  # a zombie is dead, only not yet reaped
            members.append(pid)
    return members


def kill_session(session: int, wait: float = 1.0) -> None:
    """SIGKILL every process of `session`, whichever process group it moved to, and wait up to
    `wait` seconds for them to be gone."""
    deadline = time.monotonic() + wait
    while members := session_members(session):
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def main(
    argv: typing.Sequence[str] | None = None,
    serve: typing.Callable[[list[str], str], typing.NoReturn] | None = None,
) -> None:
    """``python -m harness.hosting.sandbox --memory-mb N --cpu-seconds N --processes N -- ARGS``:
    apply the limits, then run ``uvicorn ARGS`` in this process (or `serve(ARGS, folder)`: the
    app template's, with uvicorn imported already)."""
    parser = argparse.ArgumentParser(prog="python -m harness.hosting.sandbox")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--in-box", action="store_true", help="in a bubblewrap box")
    parser.add_argument("--parent", type=int, help="the pid of the process that started this")
    parser.add_argument("uvicorn", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    limits = Limits(args.memory_mb, args.cpu_seconds, args.processes)
    apply(limits, parent=args.parent, in_box=args.in_box)
    arguments = [arg for arg in args.uvicorn if arg != "--"]
    if serve is not None:
        serve(arguments, os.getcwd())
    sys.argv = ["uvicorn", *arguments]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


def _set(which: int, soft: int) -> None:
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def _tasks_of(uid: int) -> int:
    count = 0
    for pid in pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return count


def pids() -> list[int]:
    """Every process's pid (Linux's /proc; none elsewhere). The grader's watches call this ten
    times a second for every app, so it is os.scandir, three times quicker than pathlib's."""
    try:
        with os.scandir("/proc") as entries:
            return [int(entry.name) for entry in entries if entry.name.isdigit()]
    except OSError:
        return []


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (state, ppid, pgrp, session...),
    or None if the process has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _die_with_parent(parent: int | None) -> None:
    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Did the parent die before the line above? Its pid tells, where given: a grader that is
    # itself a container's init has pid 1.
    orphaned = os.getppid() == 1 if parent is None else os.getppid() != parent
    if orphaned:
        os._exit(1)


if __name__ == "__main__":
    main()

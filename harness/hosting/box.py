"""Run one app in a box: its own user, process, mount, IPC and host-name namespaces, its own files.

`harness.hosting.isolation` starts this file as root, as ``python -I -S box.py OPTIONS -- ARGS``
(``-I -S``: no environment, no site packages, nothing of anybody's runs before the box is shut).
It uses the standard library only, and three processes, as ioi/isolate does:

- the *keeper* (this process, in the grader's namespaces) makes the new namespaces, waits for the
  box to end and ends the same way, by the same signal, so its parent sees the app's own end;
- the *init* (pid 1 of the new process namespace, root) builds the box's file system, starts the
  app and reaps whatever the app leaves; when the app ends, it ends, and the kernel kills every
  process left in the namespace, ``setsid`` daemons included;
- the *app* (pid 2) drops to the box's uid, keeps its limits, and becomes ``python -m uvicorn``.

The box's file system is a fresh tmpfs holding only what the app needs, read-only: the system
(``/usr``), the Python it runs on with its packages, and its own folder at ``/app``. ``/tmp`` and
``/dev/shm`` are small tmpfs of its own, gone with the box. Nothing else of the machine is there:
not the grader's files, its reports, the scenarios, other submissions, nor other processes
(``/proc`` shows the box's own). The network is the grading run's (the app must reach the fake
provider on loopback); the grading run has a network namespace of its own where it can.

If the keeper dies (its grading run was killed), the init dies with it, and so the whole box.

Where namespaces are refused (a container's default seccomp profile, say) but root may still
change uid, ``--no-namespaces`` makes a lesser box (`harness.hosting.isolation`'s ``uid`` level):
no init and no file system of its own, only the app, as the box's uid, with its limits, in its own
folder (``--app``, given to the uid by the grader) and no way back to root. Its processes are not
ended by the kernel: the grader ends every process of the uid when the app stops.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import platform
import resource
import signal
import sys
import typing

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}

# The top folders merged-/usr systems keep as links into /usr.
SYSTEM_LINKS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")
# Files of /etc some libraries read (the dynamic loader's cache, time zone, host names).
ETC = ("/etc/ld.so.cache", "/etc/localtime", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl/certs")
DEVICES = ("null", "zero", "full", "random", "urandom")
# RLIMIT_NPROC counts the uid's threads too (anyio lends sync code up to 40). It is a backstop
# against a fork bomb quicker than the grader's watch, which enforces the limit on processes and
# says so in the grade: far enough above it for the watch to see the app cross it first.
NPROC_ROOM = 64 + 1024
MiB = 2**20

libc = ctypes.CDLL(None, use_errno=True)


Serve = typing.Callable[[list[str], str], typing.NoReturn]


def main(argv: list[str] | None = None, serve: Serve | None = None) -> None:
    """Box the app. `serve(arguments, folder)`, called in the box as its uid, runs uvicorn with
    `arguments` from `folder` (default: ``execv`` of ``python -m uvicorn``; the app template
    passes one that runs it in-process, already imported)."""
    args = _parser().parse_args(argv)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the keeper goes with the grading run
    if os.getppid() != args.parent:  # which died before the line above
        os._exit(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stop is the app's to hear, not ours
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # ending by the app's signal dumps nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.no_namespaces:
        _uid_only(args, serve or functools.partial(_exec_uvicorn, args.python))
    _check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    status_read, status_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(status_read)
        _init(args, status_write, serve or functools.partial(_exec_uvicorn, args.python))
    os.close(status_write)
    os.waitpid(init, 0)
    _end_as(_read_status(status_read))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="box.py")
    parser.add_argument("--parent", type=int, required=True, help="the grading run's pid")
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--staging", required=True, help="an empty folder of root's")
    parser.add_argument("--app", required=True, help="the folder shown as /app")
    parser.add_argument("--read-only", action="append", default=[], help="shown at its path")
    parser.add_argument("--python", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--tmp-mb", type=int, default=64)
    parser.add_argument("--probe", action="store_true", help="build the box, run nothing")
    parser.add_argument(
        "--no-namespaces", action="store_true", help="only the uid and limits, in --app as it is"
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="-- then uvicorn's")
    return parser


def _init(args: argparse.Namespace, status_write: int, serve: Serve) -> typing.NoReturn:
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the box goes with its keeper
        _build(args)
        if args.probe:
            _send(status_write, {"exit": 0})
            os._exit(0)
        app = os.fork()
        if app == 0:
            os.close(status_write)
            _become_app(args, serve)
        while True:  # reap everything; end with the app
            pid, status = os.wait()
            if pid == app:
                break
        _send(status_write, _as_json(status))
    except BaseException as error:  # the box could not be built: say why on stderr
        print(f"faultfirst box: {error}", file=sys.stderr, flush=True)
        _send(status_write, {"exit": 125})
    os._exit(0)  # and the kernel ends every process left in the box


def _build(args: argparse.Namespace) -> None:
    """The box's root: a tmpfs in `staging`, what the app may read bound into it, then made `/`."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of ours shows outside
    root = args.staging
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    _tmpfs(root + "/tmp", args.tmp_mb)  # first: a virtualenv of the grade's may sit under /tmp
    for path in args.read_only:
        _bind(path, root + path)
    _bind(args.app, root + "/app")
    for name in SYSTEM_LINKS:
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), f"{root}/{name}")
    for path in ETC:
        if os.path.exists(path):
            _bind(path, root + path)
    _devices(root)
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    _pivot(root)


def _devices(root: str) -> None:
    os.makedirs(root + "/dev")
    for name in DEVICES:
        _bind("/dev/" + name, f"{root}/dev/{name}", read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{root}/dev/{name}")
    os.symlink("/proc/self/fd/1", root + "/dev/stdout")
    os.symlink("/proc/self/fd/2", root + "/dev/stderr")
    _tmpfs(root + "/dev/shm", 16)


def _tmpfs(path: str, megabytes: int) -> None:
    os.makedirs(path, exist_ok=True)
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={megabytes}m,mode=1777")


def _bind(source: str, target: str, *, read_only: bool = True) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (MS_RDONLY | MS_NODEV if read_only else 0)
    _mount(None, target, None, flags)


def _pivot(root: str) -> None:
    """Make `root` the root, and the machine's old one unreachable: unlike a chroot, nothing is
    left to climb back to."""
    os.chdir(root)
    os.makedirs(".old")
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root is not known on {platform.machine()}")
    _check(libc.syscall(number, b".", b".old"), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def _uid_only(args: argparse.Namespace, serve: Serve) -> typing.NoReturn:
    """The keeper of a box without namespaces: the app (or, probing, the app's Python saying
    nothing) as the box's uid, in its folder; end as it ends."""
    if args.probe:
        serve = functools.partial(_exec_python_probe, args.python)
    app = os.fork()
    if app == 0:
        _become_app(args, serve, folder=args.app)
    _, status = os.waitpid(app, 0)
    _end_as(_as_json(status))
    os._exit(1)  # not reached: _end_as ends the process


def _exec_python_probe(python: str, arguments: list[str], folder: str) -> typing.NoReturn:
    os.execv(python, [python, "-I", "-c", "pass"])  # the uid can run the app's Python


def _become_app(args: argparse.Namespace, serve: Serve, folder: str = "/app") -> typing.NoReturn:
    """In the app's process: limits, the box's uid and no way back, then uvicorn."""
    try:
        _limit(resource.RLIMIT_AS, args.memory_mb * MiB)
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_seconds, args.cpu_seconds + 5))
        _limit(resource.RLIMIT_CORE, 0)
        _limit(resource.RLIMIT_NPROC, args.processes + NPROC_ROOM)  # the uid is the app's alone
        os.setgroups([])
        os.setresgid(args.uid, args.uid, args.uid)
        os.setresuid(args.uid, args.uid, args.uid)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # set again: a change of uid clears it
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        try:
            os.chdir(folder)
        except PermissionError:
            raise OSError("its folder is not readable by other users: chmod -R a+rX it") from None
        serve([argument for argument in args.arguments if argument != "--"], folder)
    except BaseException as error:
        print(f"faultfirst box: the app could not start: {error}", file=sys.stderr, flush=True)
        os._exit(125)


def _exec_uvicorn(python: str, arguments: list[str], folder: str) -> typing.NoReturn:
    os.execv(python, [python, "-m", "uvicorn", *arguments])  # from `folder`, the working one


def _limit(which: int, soft: int) -> None:
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def _as_json(status: int) -> dict[str, int]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def _send(fd: int, status: dict[str, int]) -> None:
    try:
        os.write(fd, json.dumps(status).encode())
        os.close(fd)
    except OSError:
        pass  # sent already


def _read_status(fd: int) -> dict[str, int]:
    data = b""
    while chunk := os.read(fd, 256):
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return {"signal": signal.SIGKILL}  # the init was killed before it could say


def _end_as(status: dict[str, int]) -> None:
    """End as the app did: its exit code, or killed by its signal."""
    if "signal" in status:
        signum = status["signal"]
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    sys.stdout.flush()
    os._exit(status.get("exit", 1))


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str = "") -> None:
    encoded = [None if text is None else text.encode() for text in (source, target, kind)]
    _check(libc.mount(*encoded, flags, data.encode() or None), f"mount {target}")


def _prctl(option: int, value: int) -> None:
    _check(libc.prctl(option, value, 0, 0, 0), "prctl")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


if __name__ == "__main__":
    main()

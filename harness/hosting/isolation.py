"""How far the app under test is kept from the grader, and the boxes that keep it there.

`faultfirst grade` runs a stranger's code. Each level says what that code can reach:

- ``uid+namespaces`` (the grader runs as root on Linux: CI runners, containers, a VM): each app
  runs in a box (`box`) as a uid of its own, picked from `UIDS` and locked while it runs, in its
  own process, mount, IPC and host-name namespaces. It sees a file system of its own:
  the system and its Python read-only, its folder read-only at ``/app``, a private ``/tmp``; not
  the grader's files, reports, scenarios or other submissions. It sees no
  process but its own, so no grader's memory, environment or command line, and every process it
  starts, ``setsid`` daemons included, ends with it. The grading run itself gets a network
  namespace of its own, so the app reaches the fake provider on loopback and nothing else: not
  the machine's services, not another grade's provider, not the internet.
- ``namespaces`` (a normal user on Linux with bubblewrap, ``bwrap``): each app runs in a
  bubblewrap box (`bwrap_command`) with the same files, in user, process, IPC and host-name
  namespaces: it sees no process but its own, and everything it starts ends with it; it keeps
  the grader's uid outside, which it can use on nothing it can reach. The network is the
  machine's: it could reach a service on loopback, another grade's fake provider among them.
- ``uid`` (root where namespaces are refused, as a container's default seccomp profile refuses
  them, but the uid may still change): each app runs as a uid of its own from `UIDS`, with its
  limits, and no way back to root (`box`'s ``--no-namespaces``). It runs from a copy of its folder
  in `HOMES` that only its uid can enter, with a ``TMPDIR`` of its own. It cannot read or write
  what only root may (the grader's own files where they are root's alone, its memory and
  environment), nor signal it; when it stops, every process of its uid ends (`end_processes_of`)
  and what it left in the machine's shared temporary folders is removed. What every user may
  read, it may read too, and it shares the machine's network and its list of processes. The
  level says so, and ``--isolation required`` takes it only where the installation's hidden
  scenarios are not readable by others (an exported Gradescope autograder's are not).
- ``none`` (not Linux, a normal user without bubblewrap, or namespaces refused): the app runs as
  the grader's user, with resource limits only (`sandbox`); it can read and change what that
  user can. Grade distrusted code as root in a throwaway container or VM, or with
  ``--isolation required``, which refuses to grade at this level.

Thread mode (``pytest scenarios`` on one's own folder) is ``none`` by design: the app runs inside
the grader.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import os
import pwd
import random
import shutil
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

from .box import ETC, SYSTEM_LINKS
from . import sandbox
from .sandbox import Limits

BOXED = "uid+namespaces"  # root: a uid of its own, and namespaces
NAMESPACES = "namespaces"  # a normal user: bubblewrap's namespaces, the grader's uid outside
UID = "uid"  # root where namespaces are refused: a uid of its own, and a folder of its own
NONE = "none"
CHOICES = ("auto", "required", NONE)

# The boxes' uids: no user's (they are checked against the password database), away from nobody
# (65534, which owns the file system's reserve on some machines), from systemd's dynamic users
# (61184-65519) and from ioi/isolate's first boxes (60000 on).
UIDS = range(60200, 60400)
STATE = Path("/run/faultfirst")  # root's alone: the uids' locks, the empty folder boxes build in
BOX = Path(__file__).with_name("box.py")
SANDBOX = Path(__file__).with_name("sandbox.py")
SANDBOX_IN_BOX = "/run/faultfirst/sandbox.py"  # where a bubblewrap box shows it
HOMES = Path("/run/faultfirst-apps")  # root's, crossable by all: a uid-level app's own folder each
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # where any uid may leave files behind
# This installation's hidden scenarios: what the ``uid`` level must find unreadable by others.
HIDDEN = Path(__file__).resolve().parents[2] / "scenarios" / "hidden"
TMP_MB = 64
PROBE_TIMEOUT = 10.0


class IsolationError(RuntimeError):
    """A box cannot be made; one line for people."""


@dataclasses.dataclass(frozen=True)
class Level:
    """The isolation this machine gives apps, and what stands in the way of a stronger one."""

    name: str
    why_not: str = ""  # when `name` is none or uid: what stands in the way, and what to do
    shares_hidden: bool = False  # uid: other users can read the hidden scenarios

    @property
    def boxed(self) -> bool:
        return self.name in (BOXED, NAMESPACES, UID)

    @property
    def enough(self) -> bool:
        """Whether it is what ``--isolation required`` asks: the app in a box, and nothing of the
        grader's that matters within its reach."""
        return self.boxed and not self.shares_hidden


@functools.cache
def detect() -> Level:
    """What this machine allows, found by building one box (about 30 ms, once a process)."""
    if not sys.platform.startswith("linux"):
        return Level(NONE, "boxes need Linux; grade distrusted code on a Linux VM as root")
    try:
        if os.geteuid() == 0:
            try:
                with Lease.take() as lease:
                    _probe([*_box_command(lease.uid, Path("/"), sys.executable, Limits()), "--probe"])
            except IsolationError as refused:
                return _uid_level(refused)
            return Level(BOXED)
        if shutil.which("bwrap") is None:
            return Level(
                NONE,
                "boxes need root, or bubblewrap for a normal user (Debian, Ubuntu: apt install "
                "bubblewrap); or grade as root in a throwaway container or VM",
            )
        _probe(["bwrap", "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "true"])
        return Level(NAMESPACES)
    except IsolationError as error:
        return Level(NONE, f"{error}; grade distrusted code as root in a throwaway container or VM")


def _uid_level(refused: IsolationError) -> Level:
    """As root where namespaces are refused: a uid of its own, if this machine lets root change
    uid and the uid can run the app's Python."""
    try:
        with Lease.take() as lease:
            box = _box_command(lease.uid, Path("/"), sys.executable, Limits())
            _probe([*box, "--no-namespaces", "--probe"])
    except IsolationError as error:
        raise IsolationError(
            f"{refused}, and a uid of its own could not run the grader's Python either ({error}): "
            "install faultfirst on a Python every user may run, such as the system's"
        ) from None
    shared = "its network, its list of processes and what every user may read are the machine's"
    why = f"namespaces are refused ({refused}), so {shared}"
    if not readable_by_others(HIDDEN):
        return Level(UID, why)
    fix = f"chmod -R go-rwx {HIDDEN.parents[1]}, or grade where namespaces work"
    return Level(UID, f"{why}, the hidden scenarios among them: {fix}", shares_hidden=True)


def readable_by_others(path: Path) -> bool:
    """Whether a user with no rights on `path` but other users' could read it: every folder
    above it crossable by others, and it readable by them. A missing path is nobody's to read."""
    try:
        path = path.resolve()
        for folder in reversed(path.parents):
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


def _probe(command: list[str]) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, cwd="/"
        )
    except subprocess.TimeoutExpired:
        raise IsolationError("building a box took too long") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no reason given"]
        raise IsolationError(f"this machine refused a box ({lines[-1].strip()})")


class Lease:
    """One uid of `UIDS`, held (a lock under `STATE`) until `release`: no two apps share one,
    whichever grading run started them, so no app can signal or read another."""

    def __init__(self, uid: int, lock: int) -> None:
        self.uid = uid
        self._lock: int | None = lock

    @classmethod
    def take(cls) -> Lease:
        folder = _state("uids")
        start = random.randrange(len(UIDS))  # fewer collisions between runs starting at once
        for index in range(len(UIDS)):
            uid = UIDS[(start + index) % len(UIDS)]
            if _has_user(uid):
                continue
            lock = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(lock)
                continue
            if not processes_of(uid):  # none, unless something else uses the uid
                return cls(uid, lock)
            os.close(lock)
        raise IsolationError(f"every uid from {UIDS.start} to {UIDS.stop - 1} is in use")

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def box_command(
    lease: Lease,
    folder: Path,
    python: str,
    limits: Limits,
    uvicorn: list[str],
    *,
    namespaces: bool = True,
) -> list[str]:
    """The command that runs ``python -m uvicorn UVICORN`` in a box as `lease`'s uid, with the
    submission in `folder` at ``/app``; without `namespaces` (the ``uid`` level), in `folder`
    itself, an `AppHome`'s copy."""
    command = _box_command(lease.uid, folder, python, limits)
    return [*command, *([] if namespaces else ["--no-namespaces"]), "--", *uvicorn]


class AppHome:
    """A ``uid``-level app's own folder, ``HOMES/UID``: a copy of its submission folder (``app``,
    root's and read-only, as a box's ``/app`` is) and a ``tmp`` of its own, in a folder only its
    uid may enter, so no other app, nor anything else but root, sees either. `remove` takes it
    away with whatever the uid left in the machine's shared temporary folders."""

    def __init__(self, uid: int, folder: Path) -> None:
        HOMES.mkdir(mode=0o711, exist_ok=True)
        os.chmod(HOMES, 0o711)  # whatever made it: entered by name only
        self.uid = uid
        self.path = HOMES / str(uid)
        shutil.rmtree(self.path, ignore_errors=True)  # a grading run killed before its stop
        self.path.mkdir(mode=0o700)
        self.app, self.tmp = self.path / "app", self.path / "tmp"
        shutil.copytree(folder, self.app, symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(self.app)], check=True)
        self.tmp.mkdir(mode=0o700)
        os.chown(self.tmp, uid, uid)
        os.chown(self.path, uid, uid)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        for top in SHARED_TMP:
            with contextlib.suppress(OSError), os.scandir(top) as entries:
                for entry in entries:
                    _remove_if_owned(entry, self.uid)


def _remove_if_owned(entry: os.DirEntry[str], uid: int) -> None:
    with contextlib.suppress(OSError):
        if entry.stat(follow_symlinks=False).st_uid != uid:
            return
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)  # by file descriptor on Linux: no link leads it astray
        else:
            os.unlink(entry.path)


def end_processes_of(uid: int, python: str, attempts: int = 10) -> None:
    """End every process of `uid`, those it forks meanwhile too, as the kernel ends a box's: a
    process of ours, become `uid`, signals them all at once (``kill(-1)`` reaches every process
    its sender may signal, which as `uid` is that uid's and no other's). It runs on `python`, the
    app's, which the uid can run."""
    kill_all = [python, "-I", "-S", "-c", "import os; os.kill(-1, 9)"]
    for _ in range(attempts):
        if not _living(processes_of(uid)):
            return
        subprocess.run(kill_all, user=uid, group=uid, extra_groups=[], check=False, cwd="/")


def _living(pids: list[int]) -> list[int]:
    """Those of `pids` not ended: a killed process stays a zombie until its parent reaps it."""
    return [pid for pid in pids if (fields := sandbox.stat_fields(pid)) and fields[0] != b"Z"]


def _box_command(uid: int, folder: Path, python: str, limits: Limits) -> list[str]:
    command = [sys.executable, "-I", "-S", str(BOX), f"--parent={os.getpid()}"]
    return command + box_arguments(uid, folder, python, limits)


def box_arguments(uid: int, folder: Path, python: str, limits: Limits) -> list[str]:
    """`box`'s options, but ``--parent``, for an app on `python` as `uid`, its folder `folder`."""
    arguments = [f"--uid={uid}", "--staging", str(_state("root")), "--app", str(folder)]
    arguments += ["--python", python]
    for path in readable(python):
        arguments += ["--read-only", str(path)]
    return [*arguments, *limits.arguments()]


def bwrap_command(folder: Path, python: str, limits: Limits, uvicorn: list[str]) -> list[str]:
    """The command that runs ``python -m uvicorn UVICORN`` in a bubblewrap box, as a normal user
    can: user, process, IPC and host-name namespaces (the app keeps the grader's uid outside,
    but sees no process of it), the same files as `box_command`'s, and `limits` applied by
    `sandbox` inside."""
    command = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    command += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if _bwrap_can_disable_userns():
        command += ["--disable-userns"]  # no namespaces of its own to widen what it can do
    command += ["--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp"]  # first: a venv may be in /tmp
    for name in SYSTEM_LINKS:
        if os.path.islink("/" + name):
            command += ["--symlink", os.readlink("/" + name), "/" + name]
    for path in readable(python):
        command += ["--ro-bind", str(path), str(path)]
    for path in ETC:
        command += ["--ro-bind-try", path, path]
    command += ["--ro-bind", str(SANDBOX), SANDBOX_IN_BOX, "--ro-bind", str(folder), "/app"]
    command += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/dev/shm", "--chdir", "/app"]
    return [*command, "--", python, SANDBOX_IN_BOX, *limits.arguments(), "--in-box", "--", *uvicorn]


@functools.cache
def _bwrap_can_disable_userns() -> bool:
    """Whether this bubblewrap has ``--disable-userns`` (0.8 and later)."""
    probe = ["bwrap", "--unshare-user", "--disable-userns", "--ro-bind", "/", "/", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=PROBE_TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (a bubblewrap box's, from outside its namespace)."""
    children: dict[int, list[int]] = {}
    for process in sandbox.pids():
        fields = sandbox.stat_fields(process)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(process)
    found, waiting = [], [pid]
    while waiting:
        below = children.get(waiting.pop(), [])
        found += below
        waiting += below
    return found


@functools.cache  # the same for every app of a grade: worked out once, not at each start
def readable(python: str) -> list[Path]:
    """What the app reads besides its own folder: the system, and the Python it runs on with
    its packages (a virtualenv's, and the grader's, which a ``--install-deps`` one adds)."""
    paths = [Path("/usr"), Path(sys.base_prefix), Path(sys.prefix)]
    environment = Path(python).parent.parent
    if (environment / "pyvenv.cfg").is_file():
        paths.append(environment)
    for path in map(Path, sys.path):
        if path.name == "site-packages" and path.is_dir():
            paths.append(path)
    unique = sorted({path.resolve() for path in paths if path.exists()})
    return [path for path in unique if not any(_inside(path, other) for other in unique)]


def _inside(path: Path, other: Path) -> bool:
    return path != other and path.is_relative_to(other)


def processes_of(uid: int) -> list[int]:
    """The processes running as `uid` (every process a box's app started, wherever it went)."""
    found = []
    for pid in sandbox.pids():
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == uid:
                found.append(pid)
    return found


def bring_loopback_up() -> None:
    """Set ``lo`` up, as a fresh network namespace has it down (what ``ip link set lo up`` does)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _state(name: str) -> Path:
    folder = STATE / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder

"""Run a command as a container's default seccomp profile would let it run: no namespaces.

    python tests/seccomp_profile.py COMMAND [ARG ...]

Docker's default profile (moby's ``profiles/seccomp/default.json``) lets a container without
``CAP_SYS_ADMIN`` make no namespace: ``unshare``, ``setns``, ``mount`` and ``clone`` with a
``CLONE_NEW*`` flag are refused, and ``clone3`` answers ``ENOSYS`` so that the C library falls
back to ``clone``. That is the machine `harness.hosting.isolation` meets as root in such a
container (a Gradescope autograder, maybe), where it falls back to the ``uid`` level. This installs
the same refusals, through libseccomp (Debian's ``libseccomp2``, which systemd needs, so it is on
any Debian), and runs COMMAND under them: the filter holds for every process COMMAND starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ: (argument & datum_a) == datum_b
CLONE_NEW = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
REFUSED = ("unshare", "setns", "mount", "umount2", "pivot_root")


class ArgumentTest(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def library() -> ctypes.CDLL | None:
    """libseccomp, or None where it is not installed."""
    name = ctypes.util.find_library("seccomp")
    return None if name is None else ctypes.CDLL(name, use_errno=True)


def available() -> bool:
    """Whether this machine can run a command under the profile: Linux, libseccomp, and root
    (or no_new_privs, which the grader's boxes would then inherit: root keeps this simple)."""
    return sys.platform.startswith("linux") and os.geteuid() == 0 and library() is not None


def refuse_namespaces() -> None:
    """Install the profile on this process, for it and all it starts from now on."""
    seccomp = library()
    if seccomp is None:
        raise OSError("libseccomp is not installed (Debian: apt install libseccomp2)")
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ArgumentTest),
    ]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    filter_ = seccomp.seccomp_init(ctypes.c_uint32(ALLOW))
    if not filter_:
        raise OSError("seccomp_init failed")

    def refuse(call: str, code: int, *tests: ArgumentTest) -> None:
        number = seccomp.seccomp_syscall_resolve_name(call.encode())
        array = (ArgumentTest * max(1, len(tests)))(*tests)
        action = 0x00050000 | code  # SCMP_ACT_ERRNO(code)
        if seccomp.seccomp_rule_add_array(filter_, action, number, len(tests), array) != 0:
            raise OSError(f"seccomp_rule_add_array failed for {call}")

    for call in REFUSED:
        refuse(call, errno.EPERM)
    for flag in CLONE_NEW.values():
        refuse("clone", errno.EPERM, ArgumentTest(0, MASKED_EQ, flag, flag))
    refuse("clone3", errno.ENOSYS)
    if seccomp.seccomp_load(filter_) != 0:
        raise OSError("seccomp_load failed")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    refuse_namespaces()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])

"""What a candidate's git checkout changed of the grader it was sent with.

A candidate's repository holds the grader too (``harness/``, ``scenarios/``) and the workflow
that grades pull requests (``.github/``), all theirs to edit; a CI score from that repository is
only as honest as those files. `faultfirst grade` always grades with its own installation, so its
score stands either way; it says, though, when a checkout changed those files since its first
commit (the bundle as sent), as GitHub Classroom flags changes to protected paths.

Git runs here on a stranger's repository, whose own configuration could make it run commands
(``core.fsmonitor``, filters, external diffs). So only plumbing that reads objects is used, with
those turned off, and the working tree is hashed here, never by git.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

PROTECTED = ("harness", "scenarios", ".github")
# The bundle's one commit (`harness.commands.export_candidate`).
COMMIT_MESSAGE = "faultfirst exercise"
_GIT = ("git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
        "-c", "safe.directory=*", "--no-optional-locks")  # fmt: skip
_SKIPPED = {"__pycache__", ".pytest_cache"}
TIMEOUT = 30.0


def protected_changes(folder: Path) -> list[str]:
    """The files under `PROTECTED` that `folder`'s working tree has changed, added or removed
    since the repository's first commit; none when it is no candidate's checkout (whose first
    commit is the bundle: `export.COMMIT_MESSAGE`), or git is missing."""
    if not (folder / ".git").exists() or shutil.which("git") is None:
        return []
    try:
        first = _git(folder, "rev-list", "--max-parents=0", "HEAD").split()[-1]
        if _git(folder, "log", "-1", "--format=%s", first).strip() != COMMIT_MESSAGE:
            return []
        listing = _git(folder, "ls-tree", "-r", "-z", first, "--", *PROTECTED)
    except (subprocess.SubprocessError, OSError, IndexError):
        return []
    sent = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        sent[path] = meta.split()[2]
    algorithm = "sha256" if any(len(blob) == 64 for blob in sent.values()) else "sha1"
    now = {path: _blob(folder / path, algorithm) for path in _files(folder)}
    return sorted(path for path in sent.keys() | now.keys() if sent.get(path) != now.get(path))


def _git(folder: Path, *arguments: str) -> str:
    done = subprocess.run(
        [*_GIT, "-C", str(folder), *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nowhere"},
    )
    return done.stdout


def _files(folder: Path) -> list[str]:
    found = []
    for top in PROTECTED:
        for root, folders, files in os.walk(folder / top):
            folders[:] = [name for name in folders if name not in _SKIPPED]
            found += [
                (Path(root) / name).relative_to(folder).as_posix()
                for name in files
                if not name.endswith((".pyc", ".pyo"))
            ]
    return found


def _blob(path: Path, algorithm: str) -> str:
    """The id git gives the file's content (``git hash-object``, without filters)."""
    data = path.read_bytes() if not path.is_symlink() else os.readlink(path).encode()
    return hashlib.new(algorithm, b"blob %d\0" % len(data) + data).hexdigest()

"""Turn what a candidate handed in into a clean folder that holds their ``exercise_app/`` and
nothing else.

A submission may carry its own ``scenarios/``, ``harness/``, ``conftest.py`` or pytest
configuration; the grader must never see them, so only the package is copied, into
``work/submission/exercise_app``. Archives are unpacked into ``work/unpacked`` first, and an
archive is hostile until proven otherwise:

- names that are absolute or hold ``..`` are refused, as are device files and FIFOs;
- links are never created while files are written, so no write can follow one. A link whose
  target stays inside the archive by its letters (GitHub's zip downloads keep a repo's symlinks)
  is made afterwards, in a folder reached without links and pointing straight at where its
  target reads, so that no chain of links can lead out either; one whose target leaves the
  archive is refused;
- entries, and bytes as they come out of the decompressor, are counted against `UnpackLimits`,
  so headers that lie and compression bombs stop at the limit, not when the disk is full. For a
  tar the whole decompressed stream is counted too: a bomb can hide in a pax header.

Copying ``exercise_app/`` follows every link with `os.path.realpath` and refuses what ends up
outside the submission (the folder that was passed, or the unpacked archive); it keeps to the
same limits. A git checkout is graded as its working tree (what the candidate sees), without
``.git``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import re
import stat
import tarfile
import tomllib
import typing
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PACKAGE = "exercise_app"

# Suffix (lower case, longest first) -> the kind of archive, as messages name it.
ARCHIVES = {
    ".tar.gz": "tar.gz",
    ".tar.bz2": "tar.bz2",
    ".tar.xz": "tar.xz",
    ".tgz": "tar.gz",
    ".tar": "tar",
    ".zip": "zip",
}
_SKIPPED = {"__pycache__", ".git"}  # names never copied, at any depth; nor are *.pyc files
_CHUNK = 64 * 2**10
# Small files can compress as well as they like; past this size a ratio over the limit is a bomb.
_RATIO_FREE = 2**20
# A tar spends 512-byte blocks on each entry's header and padding, more for long names (pax or
# GNU headers): the decompressed stream may exceed the files' bytes by this much per entry.
_TAR_OVERHEAD = 4 * 2**10
_DECLARED_MAX = 2**20  # a pyproject.toml or requirements.txt larger than this is not one
_LINK_MAX = 4 * 2**10  # a zip stores a symlink's target as its content
_DEPTH_MAX = 64  # folders in exercise_app/, nested: far more than a package needs, and the copy
# recurses, far less than Python's recursion limit
_UNIX = 3  # ZipInfo.create_system of a zip made on Unix, whose external_attr holds a file mode
# What reading a damaged archive raises, from the decompressors and the archive modules.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    RuntimeError,  # zipfile: an encrypted member, an unknown compression method
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    tarfile.TarError,
)


class SubmissionError(Exception):
    """A submission that cannot be graded; the message is one line for people (what, and what
    to do)."""


@dataclass(frozen=True)
class UnpackLimits:
    """How much a submission may unpack to. The defaults are far above any honest solution
    (a few dozen files, well under a megabyte) and far below what hurts the grader's machine."""

    max_bytes: int = 100 * 2**20  # files' total size, counted as they are written
    max_files: int = 5_000  # entries in an archive (folders and links too); files copied
    # Unpacked:packed size, for a zip member or a tar's whole stream, once past 1 MiB. Source
    # code packs 3-10:1 and deflate tops out near 1000:1, so only bombs get this far.
    max_ratio: int = 200


@dataclass(frozen=True)
class Submission:
    """A submission ready to grade: `folder` holds its ``exercise_app/`` package only."""

    name: str  # for reports: the file or folder name, without an archive suffix
    source: Path  # what was passed, resolved
    folder: Path  # holds exercise_app/ and nothing else of the submission
    digest: str  # "sha256:<hex>" over the graded files (see `digest`)
    files: int  # how many files are graded
    dependencies: list[str]  # what the submission declares it needs (see `_dependencies`)


def prepare(
    source: str | os.PathLike[str], work: Path, *, limits: UnpackLimits = UnpackLimits()
) -> Submission:
    """Copy the ``exercise_app/`` of `source` (a folder, a git checkout, a .zip, .tar, .tar.gz,
    .tgz, .tar.bz2 or .tar.xz) into ``work/submission``, or raise `SubmissionError`.

    `work` is a folder the caller owns and deletes afterwards; archives are unpacked into
    ``work/unpacked``, and nothing is written outside `work`."""
    given = Path(source)
    if not given.exists():
        raise SubmissionError(f"{source} does not exist: pass a folder, a .zip or a .tar.gz")
    path = given.resolve()
    if path.is_dir():
        root, name, label = path, path.name, path.name
    else:
        kind, name = _archive_kind(path)
        root, label = Path(work) / "unpacked", path.name
        root.mkdir(parents=True)
        if kind == "zip":
            links = _unpack_zip(path, root, limits)
        else:
            links = _unpack_tar(path, kind, root, limits)
        _make_links(links, root, label)
    package = _locate(root, label)
    if package == root:  # the exercise_app folder itself was passed: it is named after its holder
        name = root.parent.name or name
    folder = Path(work) / "submission"
    folder.mkdir(parents=True)
    root_real = os.path.realpath(root)
    budget = _Budget(limits, f"{PACKAGE}/ in {label}")
    _copy_package(package, folder / PACKAGE, root_real, budget, label)
    _readable_by_all(folder)
    digest_, files = digest(folder / PACKAGE)
    declared = [] if package == root else _dependencies(package.parent, root_real, label)
    return Submission(name, path, folder, digest_, files, declared)


def digest(package: Path) -> tuple[str, int]:
    """The digest of the files of `package` (an ``exercise_app/`` folder), and how many there
    are; bytecode caches and ``.git`` are left out, a link counts as what it points to.

    Files are taken in the byte order of their posix paths relative to the package's parent;
    each adds its path's length (8 bytes, big-endian), its path (UTF-8, or the file system's
    bytes), its content's length (8 bytes) and its content, so no two sets of files share a
    stream."""
    files = sorted(
        (os.fsencode(path.relative_to(package.parent).as_posix()), path)
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not _SKIPPED.intersection(path.relative_to(package).parts)
    )
    hasher = hashlib.sha256()
    for relative, path in files:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            hasher.update(len(relative).to_bytes(8, "big") + relative + size.to_bytes(8, "big"))
            while chunk := file.read(_CHUNK):
                hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}", len(files)


class _Budget:
    """Entries and bytes so far, against the limits; `what` names what is counted, in messages."""

    def __init__(self, limits: UnpackLimits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.entries = 0
        self.bytes = 0

    def add_entries(self, count: int = 1) -> None:
        self.entries += count
        if self.entries > self.limits.max_files:
            raise SubmissionError(
                f"{self.what} holds more than {self.limits.max_files} files: leave out "
                "virtualenvs, node_modules and build output"
            )

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise self.too_big()

    def too_big(self) -> SubmissionError:
        return SubmissionError(
            f"{self.what} is over the {_size(self.limits.max_bytes)} limit: leave out "
            "virtualenvs, data files and build output"
        )

    def check_ratio(self, unpacked: int, packed: int, member: str) -> None:
        if unpacked > _RATIO_FREE and unpacked > self.limits.max_ratio * max(packed, 1):
            raise SubmissionError(
                f"{self.what} looks like a compression bomb: {member} unpacks to more than "
                f"{self.limits.max_ratio} times its packed size"
            )


# Unpacking


class _Link(typing.NamedTuple):
    path: PurePosixPath  # where the link goes, relative to the archive's root
    target: PurePosixPath  # what it points at, relative to the archive's root


class _Reader(typing.Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> object: ...


def _archive_kind(path: Path) -> tuple[str, str]:
    """The kind of archive `path` is, by its suffix, and its name without that suffix."""
    lower = path.name.lower()
    for suffix, kind in ARCHIVES.items():
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return kind, path.name[: -len(suffix)]
    raise SubmissionError(
        f"{path.name} is not a folder or a .zip, .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz "
        "archive: pass one of those"
    )


def _unpack_zip(path: Path, root: Path, limits: UnpackLimits) -> list[_Link]:
    label = path.name
    budget = _Budget(limits, label)
    links: list[_Link] = []
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as error:
        raise _unreadable(label, "zip", error) from error
    with archive:
        members = archive.infolist()
        claimed = _Budget(limits, label)  # what the central directory says, before any writing
        claimed.add_entries(len(members))
        claimed.add_bytes(sum(member.file_size for member in members))
        for member in members:
            budget.add_entries()
            name = member.filename.replace("\\", "/")  # zips made on Windows may use either
            if member.flag_bits & 0x1:
                raise SubmissionError(
                    f"{label} holds encrypted files ({_show(name)}): zip it without a password"
                )
            relative = _relative(name, label)
            mode = member.external_attr >> 16 if member.create_system == _UNIX else 0
            if relative is None:
                continue
            if stat.S_ISLNK(mode):
                target = _read_zip(archive, member, label, _LINK_MAX)
                links.append(_link(relative, target.decode(errors="surrogateescape"), label))
            elif name.endswith("/") or stat.S_ISDIR(mode):
                _make_folder(root / relative, label, name)
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                raise _special(label, name)
            else:
                budget.check_ratio(member.file_size, member.compress_size, _show(name))
                try:
                    opened = archive.open(member)
                except _READ_ERRORS as error:
                    raise _unreadable(label, "zip", error) from error
                with opened:
                    read = _reading(opened.read, label, "zip")
                    _write(read, root / relative, budget, name, member.compress_size)
    return links


def _read_zip(archive: zipfile.ZipFile, member: zipfile.ZipInfo, label: str, most: int) -> bytes:
    try:
        with archive.open(member) as opened:
            data = opened.read(most + 1)
    except _READ_ERRORS as error:
        raise _unreadable(label, "zip", error) from error
    if len(data) > most:
        raise SubmissionError(f"{label} holds a link too long to be one ({_show(member.filename)})")
    return data


class _Counted:
    """The decompressed bytes of a tar archive as `tarfile` reads them, counted, headers and
    padding included: a bomb in a pax header is stopped as surely as one in a file."""

    def __init__(
        self, raw: _Reader, label: str, kind: str, limits: UnpackLimits, packed: int | None
    ) -> None:
        self.raw = raw
        self.label = label
        self.kind = kind
        self.budget = _Budget(limits, label)
        self.most = limits.max_bytes + _TAR_OVERHEAD * (limits.max_files + 2)
        self.packed = packed  # the archive's size on disk, if it is compressed
        self.total = 0

    def read(self, size: int, /) -> bytes:
        try:
            data = self.raw.read(size)
        except _READ_ERRORS as error:
            raise _unreadable(self.label, self.kind, error) from error
        self.total += len(data)
        if self.total > self.most:
            raise self.budget.too_big()
        if self.packed is not None:
            self.budget.check_ratio(self.total, self.packed, "the archive")
        return data

    def write(self, data: bytes, /) -> object:
        raise OSError("read-only")

    def tell(self) -> int:
        return self.total

    def seek(self, position: int, /) -> object:
        raise OSError("not seekable")

    def close(self) -> object:
        return self.raw.close()


def _unpack_tar(path: Path, kind: str, root: Path, limits: UnpackLimits) -> list[_Link]:
    label = path.name
    budget = _Budget(limits, label)
    links: list[_Link] = []
    raw: _Reader
    if kind == "tar.gz":
        raw = gzip.open(path, "rb")
    elif kind == "tar.bz2":
        raw = bz2.open(path, "rb")
    elif kind == "tar.xz":
        raw = lzma.open(path, "rb")
    else:
        raw = path.open("rb")
    packed = None if kind == "tar" else path.stat().st_size
    stream = _Counted(raw, label, kind, limits, packed)
    try:
        # Stream mode ("r|"): one pass, forwards only, through the counted decompressor.
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                budget.add_entries()
                relative = _relative(member.name, label)
                if relative is None:
                    continue
                if member.issym() or member.islnk():
                    links.append(_link(relative, member.linkname, label, hard=member.islnk()))
                    _data_filter(member, root, label)
                elif member.isdir():
                    _make_folder(root / relative, label, member.name)
                elif not member.isreg():
                    raise _special(label, member.name)
                else:
                    _data_filter(member, root, label)
                    extracted = archive.extractfile(member)
                    assert extracted is not None  # a regular file always has content
                    with extracted:
                        _write(extracted.read, root / relative, budget, member.name, None)
    except tarfile.TarError as error:
        raise _unreadable(label, kind, error) from error
    finally:
        stream.close()
    return links


def _data_filter(member: tarfile.TarInfo, root: Path, label: str) -> None:
    """tarfile's own checks for untrusted archives (Python 3.11.4+), behind ours."""
    check = getattr(tarfile, "data_filter", None)
    if check is None:
        return
    try:
        check(member, str(root))
    except tarfile.FilterError as error:
        raise SubmissionError(f"{label} holds an entry unsafe to unpack ({error})") from error


def _relative(name: str, label: str) -> PurePosixPath | None:
    """An archive member's path relative to the archive's root (None for the root itself), or
    `SubmissionError` if it is absolute or climbs out."""
    if "\x00" in name:
        raise SubmissionError(f"{label} holds a name with a NUL byte in it ({_show(name)})")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise SubmissionError(
            f"{label} holds an absolute path ({_show(name)}): an archive must hold relative paths"
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SubmissionError(
            f"{label} holds a path with '..' in it ({_show(name)}): an archive must not climb out "
            "of its folder"
        )
    return PurePosixPath(*parts) if parts else None


def _link(relative: PurePosixPath, target: str, label: str, *, hard: bool = False) -> _Link:
    """A link in an archive, whose target must stay inside it. A symlink's target is relative
    to its folder; a hard link's (in a tar) to the archive's root."""
    shown = f"{_show(relative.as_posix())} -> {_show(target)}"
    if target.startswith("/") or re.match(r"[A-Za-z]:", target):
        raise SubmissionError(f"{label} holds a link to an absolute path ({shown}): leave it out")
    parts = [] if hard else list(relative.parent.parts)
    for part in target.split("/"):
        if part == "..":
            if not parts:
                raise SubmissionError(
                    f"{label} holds a link that points outside the archive ({shown}): leave it out"
                )
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return _Link(relative, PurePosixPath(*parts))


def _make_links(links: list[_Link], root: Path, label: str) -> None:
    """Create the archive's links, once all its files are written. A link is only made in a
    real folder (not one reached through another link) and never over something that exists."""
    for link in links:
        parent = root
        for part in link.path.parent.parts:
            parent = parent / part
            if parent.is_symlink():
                raise SubmissionError(
                    f"{label} holds a link inside a linked folder ({_show(link.path.as_posix())}): "
                    "leave it out"
                )
            _make_folder(parent, label, link.path.as_posix())
        path = root / link.path
        if os.path.lexists(path):
            raise SubmissionError(
                f"{label} holds {_show(link.path.as_posix())} twice, once as a link: leave one out"
            )
        os.symlink(os.path.relpath(root / link.target, path.parent), path)


def _make_folder(path: Path, label: str, name: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(label, name, error) from error


def _write(
    read: typing.Callable[[int], bytes], path: Path, budget: _Budget, name: str, packed: int | None
) -> None:
    """Write what `read` gives to `path`, counting every byte; `packed` is the member's
    compressed size, if it has its own."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("wb")
    except OSError as error:
        raise _unwritable(budget.what, name, error) from error
    with file:
        written = 0
        while chunk := read(_CHUNK):
            budget.add_bytes(len(chunk))
            written += len(chunk)
            if packed is not None:
                budget.check_ratio(written, packed, _show(name))
            file.write(chunk)


def _reading(
    read: typing.Callable[[int], bytes], label: str, kind: str
) -> typing.Callable[[int], bytes]:
    def checked(size: int) -> bytes:
        try:
            return read(size)
        except _READ_ERRORS as error:
            raise _unreadable(label, kind, error) from error

    return checked


def _unreadable(label: str, kind: str, error: BaseException) -> SubmissionError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return SubmissionError(f"{label} is not a readable {kind} archive ({reason[:200]})")


def _unwritable(label: str, name: str, error: OSError) -> SubmissionError:
    """An entry that cannot be written where it says: a file where a folder is, a name too long."""
    if isinstance(error, (FileExistsError, IsADirectoryError, NotADirectoryError)):
        reason = "it holds a file and a folder of the same name"
    else:
        reason = error.strerror or str(error)
    return SubmissionError(f"{label} cannot be unpacked at {_show(name)}: {reason}")


def _special(label: str, name: str) -> SubmissionError:
    return SubmissionError(
        f"{label} holds a device file or FIFO ({_show(name)}): archive regular files only"
    )


# Copying


def _locate(root: Path, label: str) -> Path:
    """The exercise_app/ of a submission: `root` itself, in `root`, or in one of its folders."""
    if root.name == PACKAGE and (root / "app.py").is_file():
        return root
    if (root / PACKAGE / "app.py").is_file():
        return root / PACKAGE
    found = [
        child / PACKAGE
        for child in sorted(root.iterdir())
        if not child.name.startswith(".")
        and child.name != "__MACOSX"  # what macOS adds to the zips it makes
        and (child / PACKAGE / "app.py").is_file()
    ]
    if len(found) > 1:
        names = ", ".join(f"{path.relative_to(root).as_posix()}/" for path in found)
        raise SubmissionError(f"several {PACKAGE}/ folders in {label} ({names}): hand in one")
    if not found:
        raise SubmissionError(
            f"no {PACKAGE}/ with app.py in {label}: expected {PACKAGE}/app.py at its top or "
            "inside one top-level folder"
        )
    return found[0]


def _copy_package(package: Path, target: Path, root_real: str, budget: _Budget, label: str) -> None:
    real = _followed(package, root_real, label, package.parent)
    _copy_folder(real, target, root_real, budget, label, frozenset({real}))


def _copy_folder(
    folder: str, target: Path, root_real: str, budget: _Budget, label: str, seen: frozenset[str]
) -> None:
    """Copy `folder` (a real path) to `target`, links replaced by what they point at; `seen`
    holds the real paths of the folders being copied, `folder` and those around it."""
    if len(seen) > _DEPTH_MAX:
        raise SubmissionError(
            f"{label}: {_shown(folder, root_real)} is more than {_DEPTH_MAX} folders deep: "
            "flatten it"
        )
    target.mkdir()
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name in _SKIPPED or entry.name.endswith(".pyc"):
            continue
        real = _followed(Path(entry.path), root_real, label, Path(root_real))
        mode = os.stat(real).st_mode
        if stat.S_ISDIR(mode):
            if real in seen:
                raise SubmissionError(
                    f"{label}: {_shown(entry.path, root_real)} is a link to a folder that holds "
                    "it, a loop: remove it"
                )
            _copy_folder(real, target / entry.name, root_real, budget, label, seen | {real})
        elif stat.S_ISREG(mode):
            budget.add_entries()
            with open(real, "rb") as file:
                _write(file.read, target / entry.name, budget, entry.name, None)
        else:
            raise SubmissionError(
                f"{label}: {_shown(entry.path, root_real)} is not a regular file or folder: "
                "remove it"
            )


def _readable_by_all(folder: Path) -> None:
    """Folders 0755, files 0644, whatever the umask: a boxed app runs as a uid of its own
    (`harness.hosting.isolation`), and reads its copy as any user would."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _followed(path: Path, root_real: str, label: str, shown_from: Path) -> str:
    """The real path of `path`, which must exist and be inside the submission."""
    real = os.path.realpath(path)
    if not _inside(real, root_real):
        raise SubmissionError(
            f"{label}: {_shown(str(path), str(shown_from))} links outside the submission: "
            "replace the link with the file"
        )
    if not os.path.exists(real):
        raise SubmissionError(
            f"{label}: {_shown(str(path), str(shown_from))} is a link to nothing: remove it"
        )
    return real


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _dependencies(holder: Path, root_real: str, label: str) -> list[str]:
    """What the submission declares it needs: [project].dependencies of the pyproject.toml next
    to exercise_app/, then the lines of the requirements.txt there, without comments and without
    pip options (lines starting with '-', such as -r or --index-url): the list goes to pip as
    arguments, and an option there would change how everything is installed."""
    declared: list[str] = []
    pyproject = _read_declared(holder / "pyproject.toml", root_real, label)
    if pyproject is not None:
        try:
            project = tomllib.loads(pyproject.decode()).get("project", {})
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise SubmissionError(
                f"{label}: pyproject.toml is not valid TOML ({error}): fix it or leave it out"
            ) from error
        listed = project.get("dependencies", []) if isinstance(project, dict) else []
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise SubmissionError(
                f"{label}: [project].dependencies in pyproject.toml is not a list of strings"
            )
        declared += [item.strip() for item in listed]
    requirements = _read_declared(holder / "requirements.txt", root_real, label)
    if requirements is not None:
        try:
            text = requirements.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise SubmissionError(
                f"{label}: requirements.txt is not UTF-8 text ({error})"
            ) from error
        declared += [re.sub(r"(^|\s)#.*", "", line).strip() for line in text.splitlines()]
    return list(dict.fromkeys(item for item in declared if item and not item.startswith("-")))


def _read_declared(path: Path, root_real: str, label: str) -> bytes | None:
    if not os.path.lexists(path):
        return None
    real = _followed(path, root_real, label, Path(root_real))
    mode = os.stat(real)
    if not stat.S_ISREG(mode.st_mode) or mode.st_size > _DECLARED_MAX:
        raise SubmissionError(
            f"{label}: {path.name} is not a file of at most {_size(_DECLARED_MAX)}: fix it or "
            "leave it out"
        )
    return Path(real).read_bytes()


def _shown(path: str, start: str) -> str:
    return _show(Path(os.path.relpath(path, start)).as_posix())


def _show(name: str) -> str:
    """A name from a submission, quoted and kept short: it may hold anything, newlines too."""
    shown = repr(name)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _size(count: int) -> str:
    return f"{count / 2**20:g} MiB" if count >= 2**20 else f"{count} bytes"

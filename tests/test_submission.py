"""Taking a submission apart: only its exercise_app/ reaches the grader, whatever it was handed in
as, and a hostile archive is refused without a byte written outside the work folder."""

import contextlib
import io
import os
import stat
import subprocess
import tarfile
import typing
import zipfile
from pathlib import Path

import pytest

from harness.submissions.intake import Submission, SubmissionError, UnpackLimits, prepare

APP = {
    "exercise_app/__init__.py": b"",
    "exercise_app/app.py": b"from .llm import answer\n\napp = answer\n",
    "exercise_app/llm.py": b"def answer() -> str:\n    return 'ok'\n",
    "exercise_app/static/index.html": b"<!doctype html><title>papers</title>\n",
}
SMALL = UnpackLimits(max_bytes=10_000, max_files=10)
TAR_MODES = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar": "w", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


def refused(pattern: str) -> contextlib.AbstractContextManager[typing.Any]:
    return pytest.raises(SubmissionError, match=pattern)


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A zip or a tar of `files`, their names taken as they are (hostile ones too)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
            for name, data in files.items():
                zipped.writestr(name, data)
        return path
    mode = next(mode for suffix, mode in TAR_MODES.items() if path.name.endswith(suffix))
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in files.items():
            entry, content = file_entry(name, data)
            archive.addfile(entry, io.BytesIO(content))
    return path


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    entry = tarfile.TarInfo(name)
    entry.size = len(data)
    return entry, data


def link_entry(
    name: str, target: str, kind: bytes = tarfile.SYMTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.linkname = target
    return entry, b""


def app_entries(prefix: str = "") -> list[tuple[tarfile.TarInfo, bytes]]:
    return [file_entry(prefix + name, data) for name, data in APP.items()]


def make_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for entry, data in entries:
            archive.addfile(entry, io.BytesIO(data) if data else None)
    return path


def zip_entry(zipped: zipfile.ZipFile, name: str, mode: int, data: bytes) -> None:
    """An entry with a Unix file mode, as Info-ZIP stores a symlink: its target as content."""
    entry = zipfile.ZipInfo(name)
    entry.create_system = 3
    entry.external_attr = mode << 16
    zipped.writestr(entry, data)


def graded_files(submission: Submission) -> list[str]:
    return sorted(
        path.relative_to(submission.folder).as_posix()
        for path in submission.folder.rglob("*")
        if path.is_file()
    )


def assert_nothing_written_outside(tmp_path: Path, *made: str) -> None:
    """tmp_path holds what the test made and the work folder, and work holds nothing but the
    unpacked folder: no member landed beside it or above it."""
    assert sorted(os.listdir(tmp_path)) == sorted(["work", *made])
    assert os.listdir(tmp_path / "work") in ([], ["unpacked"])


def patched(data: bytes, signature: bytes, offset: int, value: bytes) -> bytes:
    """`data` with `value` at `offset` in its (only) header that starts with `signature`."""
    at = data.index(signature) + offset
    return data[:at] + value + data[at + len(value) :]


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"},
    )


# Submissions as they come


def test_a_folder_gives_its_exercise_app_and_nothing_else(tmp_path: Path) -> None:
    source = write_tree(
        tmp_path / "alice",
        {
            **APP,
            "conftest.py": b"import pytest\n",
            "scenarios/test_cheat.py": b"def test_pass(): pass\n",
            "harness/__init__.py": b"",
            "pytest.ini": b"[pytest]\naddopts = -p no:faultfirst\n",
            "pyproject.toml": b'[project]\nname = "alice"\n'
            b'dependencies = ["tenacity>=8", "httpx"]\n'
            b'[tool.pytest.ini_options]\naddopts = "-x"\n',
            "requirements.txt": b"# pinned\ntenacity>=8\norjson==3.10  # fast json\n\n"
            b"-r dev.txt\n--index-url=https://example.invalid/simple\n",
        },
    )
    submission = prepare(source, tmp_path / "work")
    assert submission.name == "alice"
    assert submission.source == source.resolve()
    assert submission.folder == tmp_path / "work" / "submission"
    assert os.listdir(submission.folder) == ["exercise_app"]
    assert graded_files(submission) == sorted(APP)
    assert submission.files == len(APP)
    assert submission.digest.startswith("sha256:") and len(submission.digest) == 7 + 64
    # pip options are left out: the list goes to pip as arguments
    assert submission.dependencies == ["tenacity>=8", "httpx", "orjson==3.10"]


def test_the_exercise_app_folder_itself_is_named_after_its_holder(tmp_path: Path) -> None:
    write_tree(tmp_path / "alice", {**APP, "pyproject.toml": b'[project]\ndependencies = ["x"]\n'})
    submission = prepare(tmp_path / "alice" / "exercise_app", tmp_path / "work")
    assert submission.name == "alice"
    assert graded_files(submission) == sorted(APP)
    assert submission.dependencies == []  # what lies outside what was passed is not read


@pytest.mark.parametrize("checkout", [".", "exercise_app"])
def test_a_git_checkout_is_graded_without_its_git_folder(tmp_path: Path, checkout: str) -> None:
    repo = write_tree(tmp_path / "alice", {**APP, "conftest.py": b""}) / checkout
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "solution")
    assert (repo / ".git" / "HEAD").is_file()
    submission = prepare(repo, tmp_path / "work")
    assert graded_files(submission) == sorted(APP)
    assert not list(submission.folder.rglob(".git"))
    assert submission.name == "alice"


def test_a_github_zip_with_one_top_level_folder(tmp_path: Path) -> None:
    files = {f"alice-main/{name}": data for name, data in APP.items()}
    files["alice-main/conftest.py"] = b"import os\n"
    files["alice-main/scenarios/test_x.py"] = b""
    files["alice-main/pyproject.toml"] = b'[project]\ndependencies = ["tenacity"]\n'
    files["__MACOSX/alice-main/exercise_app/._app.py"] = b"\x00"  # beside it, as macOS makes
    submission = prepare(make_archive(tmp_path / "alice.zip", files), tmp_path / "work")
    assert submission.name == "alice"
    assert graded_files(submission) == sorted(APP)
    assert submission.dependencies == ["tenacity"]
    llm = submission.folder / "exercise_app" / "llm.py"
    assert llm.read_bytes() == APP["exercise_app/llm.py"]


def test_a_zip_made_on_windows_with_backslashes(tmp_path: Path) -> None:
    files = {name.replace("/", "\\"): data for name, data in APP.items()}
    submission = prepare(make_archive(tmp_path / "alice.zip", files), tmp_path / "work")
    assert graded_files(submission) == sorted(APP)


@pytest.mark.parametrize("suffix", list(TAR_MODES))
def test_tar_archives(tmp_path: Path, suffix: str) -> None:
    files = {f"alice/{name}": data for name, data in {**APP, "conftest.py": b""}.items()}
    submission = prepare(make_archive(tmp_path / f"alice{suffix}", files), tmp_path / "work")
    assert submission.name == "alice"
    assert graded_files(submission) == sorted(APP)
    assert submission.files == len(APP)


def test_the_digest_is_the_same_however_the_files_come(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "alice", APP)
    digests = {
        prepare(source, tmp_path / "work1").digest,
        prepare(source, tmp_path / "work2").digest,
        prepare(make_archive(tmp_path / "alice.zip", APP), tmp_path / "work3").digest,
        prepare(make_archive(tmp_path / "alice.tar.gz", APP), tmp_path / "work4").digest,
    }
    assert len(digests) == 1
    (source / "exercise_app" / "llm.py").write_bytes(b"def answer() -> str:\n    return 'ko'\n")
    assert prepare(source, tmp_path / "work5").digest not in digests


def test_the_digest_frames_paths_and_contents(tmp_path: Path) -> None:
    """Moving a byte from a file's name to its content makes another submission."""
    one = write_tree(tmp_path / "one", {**APP, "exercise_app/ab": b"c"})
    two = write_tree(tmp_path / "two", {**APP, "exercise_app/a": b"bc"})
    assert prepare(one, tmp_path / "work1").digest != prepare(two, tmp_path / "work2").digest


def test_the_digest_ignores_caches(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "alice", APP)
    clean = prepare(source, tmp_path / "work1")
    write_tree(
        source,
        {
            "exercise_app/__pycache__/app.cpython-311.pyc": b"\x00compiled",
            "exercise_app/static/__pycache__/x.pyc": b"\x00",
            "exercise_app/stray.pyc": b"\x00",
        },
    )
    cached = prepare(source, tmp_path / "work2")
    assert (cached.digest, cached.files) == (clean.digest, clean.files)
    assert graded_files(cached) == sorted(APP)


def test_links_inside_a_folder_are_copied_as_what_they_point_at(tmp_path: Path) -> None:
    source = write_tree(
        tmp_path / "alice", {**APP, "shared/util.py": b"X = 1\n", "assets/a.css": b"a{}"}
    )
    os.symlink("../shared/util.py", source / "exercise_app" / "util.py")
    os.symlink("../assets", source / "exercise_app" / "assets")
    submission = prepare(source, tmp_path / "work")
    copied = submission.folder / "exercise_app"
    assert not (copied / "util.py").is_symlink() and not (copied / "assets").is_symlink()
    assert (copied / "util.py").read_bytes() == b"X = 1\n"
    assert (copied / "assets" / "a.css").read_bytes() == b"a{}"
    assert submission.files == len(APP) + 2


def test_a_link_out_of_a_folder_is_refused(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "alice", APP)
    (tmp_path / "secret.txt").write_text("the grader's secret")
    os.symlink(tmp_path / "secret.txt", source / "exercise_app" / "notes.txt")
    with refused(r"^alice: 'exercise_app/notes.txt' links outside the submission: replace"):
        prepare(source, tmp_path / "work")
    assert not list((tmp_path / "work").rglob("notes.txt"))


def test_a_broken_link_and_a_loop_are_refused(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "alice", APP)
    os.symlink("gone.py", source / "exercise_app" / "old.py")
    with refused(r"^alice: 'exercise_app/old.py' is a link to nothing: remove it$"):
        prepare(source, tmp_path / "work1")
    os.remove(source / "exercise_app" / "old.py")
    os.symlink(".", source / "exercise_app" / "again")
    with refused(r"^alice: 'exercise_app/again' is a link to a folder that holds it, a loop"):
        prepare(source, tmp_path / "work2")


def test_the_copy_keeps_to_the_limits(tmp_path: Path) -> None:
    modules = {f"exercise_app/m{n}.py": b"" for n in range(7)}
    many = write_tree(tmp_path / "alice", {**APP, **modules})
    with refused(r"^exercise_app/ in alice holds more than 10 files: leave out virtualenvs"):
        prepare(many, tmp_path / "work1", limits=SMALL)
    big = write_tree(tmp_path / "bob", {**APP, "exercise_app/data.bin": bytes(20_000)})
    with refused(r"^exercise_app/ in bob is over the 10000 bytes limit: leave out"):
        prepare(big, tmp_path / "work2", limits=SMALL)
    deep = write_tree(tmp_path / "carol", {**APP, "exercise_app/" + "d/" * 70 + "x.py": b""})
    with refused(r"^carol: 'exercise_app/d/d/d.* is more than 64 folders deep: flatten it$"):
        prepare(deep, tmp_path / "work3")


# Submissions that are not one


def test_a_source_that_does_not_exist(tmp_path: Path) -> None:
    with refused(r"alice.zip does not exist: pass a folder, a .zip or a .tar.gz$"):
        prepare(tmp_path / "alice.zip", tmp_path / "work")


def test_a_file_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "alice.rar").write_bytes(b"Rar!")
    with refused(r"^alice.rar is not a folder or a .zip, .tar, .tar.gz, .tgz, .tar.bz2 or"):
        prepare(tmp_path / "alice.rar", tmp_path / "work")


@pytest.mark.parametrize(
    "files",
    [
        {"alice/README.md": b"todo"},
        {"exercise_app/__init__.py": b"", "exercise_app/main.py": b""},  # no app.py
        {"a/b/exercise_app/app.py": b""},  # too deep to be meant
    ],
)
def test_no_exercise_app(tmp_path: Path, files: dict[str, bytes]) -> None:
    with refused(r"^no exercise_app/ with app.py in alice.zip: expected exercise_app/app.py"):
        prepare(make_archive(tmp_path / "alice.zip", files), tmp_path / "work")


def test_several_exercise_apps(tmp_path: Path) -> None:
    files = {f"{who}/{name}": data for who in ("alice", "bob") for name, data in APP.items()}
    with refused(r"^several exercise_app/ folders in both.zip \(alice/exercise_app/, bob/"):
        prepare(make_archive(tmp_path / "both.zip", files), tmp_path / "work")


def test_a_pyproject_that_is_not_toml(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "alice", {**APP, "pyproject.toml": b"[project\n"})
    with refused(r"^alice: pyproject.toml is not valid TOML \(.*\): fix it or leave it out$"):
        prepare(source, tmp_path / "work")


# Hostile archives


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("../../evil.py", r"holds a path with '..' in it \('../../evil.py'\)"),
        ("{tmp}/abs.py", r"holds an absolute path \('/.*/abs.py'\)"),
    ],
)
def test_paths_out_of_the_archive_are_refused(
    tmp_path: Path, suffix: str, name: str, refusal: str
) -> None:
    archive = make_archive(tmp_path / f"alice{suffix}", {**APP, name.format(tmp=tmp_path): b"1"})
    with refused(rf"^alice{suffix} {refusal}"):
        prepare(archive, tmp_path / "work")
    assert_nothing_written_outside(tmp_path, archive.name)


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        ("{tmp}/outside", "a link to an absolute path"),
        ("../../outside", "a link that points outside the archive"),
    ],
)
def test_a_tar_symlink_out_is_refused_before_anything_goes_through_it(
    tmp_path: Path, target: str, refusal: str
) -> None:
    (tmp_path / "outside").mkdir()
    entries = [
        link_entry("exercise_app/out", target.format(tmp=tmp_path)),
        file_entry("exercise_app/out/evil.py", b"x"),
        *app_entries(),
    ]
    archive = make_tar(tmp_path / "alice.tar.gz", entries)
    with refused(rf"^alice.tar.gz holds {refusal} \('exercise_app/out' -> "):
        prepare(archive, tmp_path / "work")
    assert os.listdir(tmp_path / "outside") == []
    assert_nothing_written_outside(tmp_path, archive.name, "outside")


def test_a_zip_symlink_out_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alice.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in APP.items():
            zipped.writestr(name, data)
        zip_entry(zipped, "exercise_app/passwd.txt", stat.S_IFLNK | 0o777, b"/etc/passwd")
    with refused(r"^alice.zip holds a link to an absolute path \('exercise_app/passwd.txt' -> "):
        prepare(path, tmp_path / "work")
    assert_nothing_written_outside(tmp_path, "alice.zip")
    assert not list((tmp_path / "work").rglob("passwd.txt"))


def test_a_tar_hardlink_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("the grader's secret")
    entries = [*app_entries(), link_entry("exercise_app/s.txt", "../secret.txt", tarfile.LNKTYPE)]
    archive = make_tar(tmp_path / "alice.tar.gz", entries)
    with refused(r"^alice.tar.gz holds a link that points outside the archive \('exercise_app"):
        prepare(archive, tmp_path / "work")
    assert_nothing_written_outside(tmp_path, archive.name, "secret.txt")
    assert not list((tmp_path / "work").rglob("s.txt"))


def test_links_that_stay_inside_an_archive_are_copied_as_what_they_point_at(
    tmp_path: Path,
) -> None:
    entries = [
        *app_entries("repo/"),
        file_entry("repo/shared/util.py", b"X = 1\n"),
        link_entry("repo/exercise_app/util.py", "../shared/util.py"),
        link_entry("repo/exercise_app/same.py", "repo/exercise_app/llm.py", tarfile.LNKTYPE),
    ]
    submission = prepare(make_tar(tmp_path / "alice.tar.gz", entries), tmp_path / "work1")
    copied = submission.folder / "exercise_app"
    assert (copied / "util.py").read_bytes() == b"X = 1\n" and not (copied / "util.py").is_symlink()
    assert (copied / "same.py").read_bytes() == APP["exercise_app/llm.py"]
    path = tmp_path / "alice.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in {**APP, "shared/util.py": b"X = 1\n"}.items():
            zipped.writestr(name, data)
        zip_entry(zipped, "exercise_app/util.py", stat.S_IFLNK | 0o777, b"../shared/util.py")
    submission = prepare(path, tmp_path / "work2")
    assert (submission.folder / "exercise_app" / "util.py").read_bytes() == b"X = 1\n"


def test_a_link_in_an_archive_goes_where_it_reads_not_where_a_chain_would_lead(
    tmp_path: Path,
) -> None:
    """e -> 'd/../../../secret.txt' reads as the archive's own secret.txt, but d is itself a link
    one folder down: followed on disk as written, e would climb out to work/secret.txt."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "secret.txt").write_text("the grader's secret")
    entries = [
        *app_entries("repo/"),
        file_entry("repo/other/x", b""),
        file_entry("secret.txt", b"the archive's own"),
        link_entry("repo/exercise_app/d", "../other"),
        link_entry("repo/exercise_app/e", "d/../../../secret.txt"),
    ]
    submission = prepare(make_tar(tmp_path / "alice.tar.gz", entries), tmp_path / "work")
    assert (submission.folder / "exercise_app" / "e").read_bytes() == b"the archive's own"


def test_a_link_is_never_made_through_another_link(tmp_path: Path) -> None:
    entries = [
        *app_entries(),
        file_entry("real/keep.txt", b""),
        link_entry("exercise_app/d", "../real"),
        link_entry("exercise_app/d/x", "../llm.py"),
    ]
    archive = make_tar(tmp_path / "alice.tar.gz", entries)
    with refused(r"^alice.tar.gz holds a link inside a linked folder \('exercise_app/d/x'\)"):
        prepare(archive, tmp_path / "work")
    assert os.listdir(tmp_path / "work" / "unpacked" / "real") == ["keep.txt"]


def test_device_files_and_fifos_are_refused(tmp_path: Path) -> None:
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        entry = tarfile.TarInfo("exercise_app/dev")
        entry.type = kind
        archive = make_tar(tmp_path / "alice.tar.gz", [*app_entries(), (entry, b"")])
        with refused(r"^alice.tar.gz holds a device file or FIFO \('exercise_app/dev'\)"):
            prepare(archive, tmp_path / f"work{kind.decode()}")
        assert not (tmp_path / f"work{kind.decode()}" / "unpacked" / "exercise_app/dev").exists()
    path = tmp_path / "alice.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zip_entry(zipped, "exercise_app/pipe", stat.S_IFIFO | 0o644, b"")
    with refused(r"^alice.zip holds a device file or FIFO \('exercise_app/pipe'\)"):
        prepare(path, tmp_path / "work")


def test_a_zip_over_the_limits_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "alice.zip", {**APP, "exercise_app/zeros": bytes(64_000)})
    assert archive.stat().st_size < 10_000  # small on disk, too large unpacked
    with refused(r"^alice.zip is over the 10000 bytes limit: leave out"):
        prepare(archive, tmp_path / "work", limits=SMALL)
    assert list((tmp_path / "work" / "unpacked").rglob("*")) == []
    assert_nothing_written_outside(tmp_path, archive.name)


def test_a_zip_whose_header_lies_about_its_size(tmp_path: Path) -> None:
    """Its directory claims 100 bytes for 64 kB of zeros: no more than 100 bytes come out."""
    archive = make_archive(tmp_path / "alice.zip", {"exercise_app/app.py": bytes(64_000)})
    claimed = (100).to_bytes(4, "little")
    archive.write_bytes(patched(archive.read_bytes(), b"PK\x01\x02", 24, claimed))
    with refused(r"^alice.zip is not a readable zip archive \(Bad CRC-32 for file 'exercise_app/a"):
        prepare(archive, tmp_path / "work", limits=SMALL)
    written = [path.stat().st_size for path in (tmp_path / "work").rglob("*") if path.is_file()]
    assert max(written, default=0) <= 100


def test_a_zip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "alice.zip", {**APP, "exercise_app/zeros": bytes(2 * 2**20)})
    with refused(r"^alice.zip looks like a compression bomb: 'exercise_app/zeros' unpacks to more"):
        prepare(archive, tmp_path / "work")


def test_a_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "alice.tar.gz", {**APP, "exercise_app/zeros": bytes(64_000)})
    with refused(r"^alice.tar.gz is over the 10000 bytes limit"):
        prepare(archive, tmp_path / "work1", limits=SMALL)
    written = sum(path.stat().st_size for path in (tmp_path / "work1").rglob("*") if path.is_file())
    assert written <= SMALL.max_bytes
    bomb = make_archive(tmp_path / "bob.tar.gz", {**APP, "exercise_app/zeros": bytes(2 * 2**20)})
    with refused(r"^bob.tar.gz looks like a compression bomb: the archive unpacks to more than"):
        prepare(bomb, tmp_path / "work2")


def test_a_gzip_bomb_in_a_pax_header_stops_at_the_limit(tmp_path: Path) -> None:
    """Headers are not files, but they are decompressed too: all of the stream is counted."""
    entry, _ = file_entry("exercise_app/app.py", b"")
    entry.pax_headers = {"comment": "x" * 200_000}
    path = tmp_path / "alice.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(entry)
    with refused(r"^alice.tar.gz is over the 10000 bytes limit"):
        prepare(path, tmp_path / "work", limits=SMALL)


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_too_many_files_are_refused(tmp_path: Path, suffix: str) -> None:
    files = {**APP, **{f"exercise_app/m{n}.py": b"" for n in range(10)}}
    archive = make_archive(tmp_path / f"alice{suffix}", files)
    with refused(rf"^alice{suffix} holds more than 10 files: leave out"):
        prepare(archive, tmp_path / "work", limits=SMALL)
    written = [path for path in (tmp_path / "work").rglob("*") if path.is_file()]
    assert len(written) <= SMALL.max_files


def test_damaged_archives_are_refused(tmp_path: Path) -> None:
    whole = make_archive(tmp_path / "whole.zip", APP).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    with refused(r"^cut.zip is not a readable zip archive \(File is not a zip file\)$"):
        prepare(tmp_path / "cut.zip", tmp_path / "work1")
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zipped:
        for name, data in APP.items():
            zipped.writestr(name, data)
    stored.write_bytes(stored.read_bytes().replace(b"return 'ok'", b"return 'KO'"))
    with refused(r"^stored.zip is not a readable zip archive \(Bad CRC-32 for file 'exercise_"):
        prepare(stored, tmp_path / "work2")
    whole = make_archive(tmp_path / "whole.tar.gz", APP).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with refused(r"^cut.tar.gz is not a readable tar.gz archive \(.+\)$"):
        prepare(tmp_path / "cut.tar.gz", tmp_path / "work3")
    (tmp_path / "text.tgz").write_text("not an archive at all")
    with refused(r"^text.tgz is not a readable tar.gz archive \(Not a gzipped file"):
        prepare(tmp_path / "text.tgz", tmp_path / "work4")


def test_an_encrypted_zip_is_refused(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "alice.zip", {"exercise_app/app.py": b"app = 1\n"})
    archive.write_bytes(patched(archive.read_bytes(), b"PK\x01\x02", 8, b"\x01\x00"))
    with refused(r"^alice.zip holds encrypted files \('exercise_app/app.py'\): zip it without"):
        prepare(archive, tmp_path / "work")

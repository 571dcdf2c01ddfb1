"""The submissions of the interviewer's GitHub Actions workflow: listed, fetched, accounted for.

The workflow (``templates/grade-submissions.yml``) runs this module in three places:

- ``list``: the submissions the run was given (``$SUBMISSIONS``, else a file of them), checked
  and named, become the job matrix, one job each (``matrix=`` in ``$GITHUB_OUTPUT``);
- ``fetch DEST``: in a job, its submission (``$SUBMISSION``) is fetched into DEST: a git
  repository (at a branch, tag or commit), a pull request's head, or an archive; the path to grade
  goes to ``$GITHUB_OUTPUT`` as ``path=``;
- ``missing GRADES``: the last job names the submissions without a grade in GRADES.

Addresses and names come from the interviewer, but a candidate chose part of them (a repository's
name, an archive's), so they reach the workflow's scripts only through the environment, never
pasted into a script, and everything here runs git and downloads with argument lists, never a
shell. Only ``https://`` addresses are taken, without user names or tokens in them: a token for
private repositories comes from the ``FAULTFIRST_GIT_TOKEN`` secret (``$GIT_TOKEN``), sent to
github.com only. Names keep to letters, digits, ``.``, ``_`` and ``-``, so they are safe as file
and artifact names.

This module imports the standard library only: the list job runs it from a bare checkout.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from ..submissions.intake import ARCHIVES

MAX_JOBS = 256  # GitHub's limit of jobs a matrix makes
MAX_DOWNLOAD = 100 * 2**20  # an archive's bytes; as `harness.submissions.intake` allows unpacked
DOWNLOAD_TIMEOUT = 60.0
GIT_TIMEOUT = 300.0
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
PULL = re.compile(r"/(?P<repository>[^/]+/[^/]+?)(?:\.git)?/pull/(?P<number>[0-9]+)/?")
TREE = re.compile(r"/(?P<repository>[^/]+/[^/]+?)/tree/(?P<ref>[^@]+?)/?")  # a branch's page
TOKEN_HOST = "https://github.com/"


class MatrixError(Exception):
    """A submission cannot be listed or fetched; one line for people."""


@dataclasses.dataclass(frozen=True)
class Submission:
    """One submission to grade: `source` as given, and what it means."""

    name: str
    source: str
    kind: str  # git, pull or archive
    url: str  # the repository to clone, or the archive to download
    ref: str = ""  # git: what to check out (empty: the default branch); pull: the ref to fetch
    suffix: str = ""  # archive: its suffix, which tells `faultfirst grade` how to unpack it


def parse(text: str) -> list[Submission]:
    """The submissions in `text`: addresses separated by spaces, commas or new lines, each
    perhaps ``NAME=ADDRESS``; a line starting with ``#`` is a comment. Names are made unique."""
    items = []
    for line in text.splitlines():
        if not line.strip().startswith("#"):
            items += [item for item in re.split(r"[\s,]+", line) if item]
    if not items:
        raise MatrixError("no submissions given: list their addresses")
    if len(items) > MAX_JOBS:
        raise MatrixError(
            f"{len(items)} submissions, but a GitHub Actions matrix runs at most {MAX_JOBS} "
            "jobs: split them between runs"
        )
    taken: set[str] = set()
    submissions = []
    for item in items:
        submission = parse_one(item)
        name, number = submission.name, 1
        while name in taken:
            number += 1
            name = f"{submission.name}-{number}"
        taken.add(name)
        submissions.append(dataclasses.replace(submission, name=name))
    return submissions


def parse_one(item: str) -> Submission:
    """One submission: ``[NAME=]ADDRESS``."""
    name = ""
    equals, scheme = item.find("="), item.find("://")
    if 0 <= equals < scheme:
        name, address = item[:equals], item[equals + 1 :]
        if not NAME.fullmatch(name):
            raise MatrixError(
                f"{item!r}: a name keeps to letters, digits, '.', '_' and '-' (100 at most)"
            )
    else:
        address = item
    url = _checked_url(item, address)
    archive = _archive_suffix(url.path)
    if archive:
        stem = PurePosixPath(urllib.parse.unquote(url.path)).name[: -len(archive)]
        return Submission(name or _name(stem), item, "archive", address, suffix=archive)
    if url.query or url.fragment:
        raise MatrixError(f"{item!r}: a git address has no '?' or '#' part")
    pull = PULL.fullmatch(url.path)
    if pull:
        repository = pull["repository"]
        ref = f"pull/{pull['number']}/head"
        clone = f"https://{url.netloc}/{repository}"
        default = _name(f"{repository.replace('/', '-')}-pr{pull['number']}")
        return Submission(name or default, item, "pull", clone, ref)
    tree = TREE.fullmatch(url.path)
    if tree:
        path, ref = f"/{tree['repository']}", tree["ref"]
    else:
        path, _, ref = url.path.partition("@")
    if ref and (not REF.fullmatch(ref) or ".." in ref):
        raise MatrixError(f"{item!r}: {ref!r} is not a branch, tag or commit")
    parts = [part for part in path.removesuffix(".git").split("/") if part]
    if len(parts) < 2:
        raise MatrixError(f"{item!r}: expected a repository, https://HOST/OWNER/REPO")
    clone = f"https://{url.netloc}{path}"
    return Submission(name or _name("-".join(parts[-2:])), item, "git", clone, ref)


def matrix(submissions: typing.Sequence[Submission]) -> str:
    """The job matrix: for each submission, its name and its address as given."""
    include = [{"name": item.name, "source": item.source} for item in submissions]
    return json.dumps({"include": include}, separators=(",", ":"))


def fetch(submission: Submission, destination: Path, token: str = "") -> Path:
    """Fetch `submission` into `destination` and return what to grade: a checkout's folder, or
    the archive."""
    destination.mkdir(parents=True, exist_ok=True)
    if submission.kind == "archive":
        target = destination / f"{submission.name}{submission.suffix}"
        download(submission.url, target)
        return target
    folder = destination / submission.name
    what = f"could not fetch {submission.source}"
    _git(["clone", "--quiet", "--", submission.url, str(folder)], token, what)
    if submission.ref:
        _git(["-C", str(folder), "fetch", "--quiet", "origin", submission.ref], token, what)
        _git(["-C", str(folder), "checkout", "--quiet", "--detach", "FETCH_HEAD"], "", what)
    return folder


def download(url: str, target: Path, limit: int = MAX_DOWNLOAD) -> None:
    """Download `url` into `target`, stopping at `limit` bytes."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            with target.open("wb") as file:
                written = 0
                while chunk := response.read(64 * 2**10):
                    written += len(chunk)
                    if written > limit:
                        raise MatrixError(f"{url} is larger than {_size(limit)}: not a submission")
                    file.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        target.unlink(missing_ok=True)
        raise MatrixError(f"could not download {url}: {error}") from None
    except MatrixError:
        target.unlink(missing_ok=True)
        raise


def missing(matrix_text: str, grades: Path) -> list[str]:
    """The names in the job matrix `matrix_text` without a grade, ``grades/NAME.json``."""
    names = [entry["name"] for entry in json.loads(matrix_text)["include"]]
    return [name for name in names if not (grades / f"{name}.json").is_file()]


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.engines.matrix")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="$SUBMISSIONS (else --file) as the job matrix")
    listing.add_argument("--file", type=Path, help="the submissions when $SUBMISSIONS is empty")
    fetching = commands.add_parser("fetch", help="fetch $SUBMISSION into DEST")
    fetching.add_argument("destination", type=Path, metavar="DEST")
    accounting = commands.add_parser("missing", help="$MATRIX's names without GRADES/NAME.json")
    accounting.add_argument("grades", type=Path, metavar="GRADES")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list(args.file)
        if args.command == "fetch":
            return _fetch(args.destination)
        return _missing(args.grades)
    except MatrixError as error:
        print(f"faultfirst: {error}", file=sys.stderr)
        return 1


def _list(file: Path | None) -> int:
    text = os.environ.get("SUBMISSIONS", "")
    if not text.strip() and file is not None:
        if not file.is_file():
            raise MatrixError(f"no submissions given, and no {file}: list them to the run")
        text = file.read_text(encoding="utf-8")
    submissions = parse(text)
    _output("matrix", matrix(submissions))
    for submission in submissions:
        where = f" at {submission.ref}" if submission.ref else ""
        print(f"{submission.name}: {submission.kind} {submission.url}{where}")
    return 0


def _fetch(destination: Path) -> int:
    submission = parse_one(os.environ.get("SUBMISSION", ""))
    name = os.environ.get("NAME") or submission.name  # the matrix's, made unique there
    if not NAME.fullmatch(name):
        raise MatrixError(f"{name!r} is not a name this workflow gives")
    token = os.environ.get("GIT_TOKEN", "")
    path = fetch(dataclasses.replace(submission, name=name), destination, token)
    _output("path", str(path))
    print(f"{name}: fetched into {path}")
    return 0


def _missing(grades: Path) -> int:
    for name in missing(os.environ.get("MATRIX", '{"include": []}'), grades):
        print(f"- **{name}**: not graded; its job's log says why.")
    return 0


def _checked_url(item: str, address: str) -> urllib.parse.SplitResult:
    if any(character.isspace() or not character.isprintable() for character in address):
        raise MatrixError(f"{item!r}: an address has no spaces or control characters")
    url = urllib.parse.urlsplit(address)
    if url.scheme != "https" or not url.hostname:
        raise MatrixError(f"{item!r}: give an https:// address")
    if "@" in url.netloc:
        raise MatrixError(
            f"{item!r}: no user name or token in an address; for private repositories, set the "
            "FAULTFIRST_GIT_TOKEN secret"
        )
    return url


def _size(count: int) -> str:
    return f"{count // 2**20} MiB" if count >= 2**20 else f"{count} bytes"


def _archive_suffix(path: str) -> str:
    lower = path.lower()
    return next((suffix for suffix in ARCHIVES if lower.endswith(suffix)), "")


def _name(text: str) -> str:
    """A name from a candidate's text: other characters as ``-``, 100 at most."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100].rstrip("-.")
    return name if NAME.fullmatch(name) else "submission"


def _git(arguments: list[str], token: str, what: str) -> None:
    """Run git, never prompting; with `token` as github.com's credentials, kept out of any
    file (a ``-c`` setting lasts one command). `what` begins the error's message."""
    command = ["git"]
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        command += ["-c", f"http.{TOKEN_HOST}.extraHeader=Authorization: Basic {basic}"]
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        subprocess.run(
            command + arguments, env=environment, check=True, capture_output=True, text=True,
            timeout=GIT_TIMEOUT,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        said = [line for line in error.stderr.splitlines() if line.strip()] or ["no reason given"]
        raise MatrixError(f"{what}: {said[-1].strip()}") from None
    except (subprocess.TimeoutExpired, OSError) as error:
        raise MatrixError(f"{what}: {error}") from None


def _output(key: str, value: str) -> None:
    """``key=value`` for the workflow (``$GITHUB_OUTPUT``), or on stdout outside one."""
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as file:
            file.write(f"{key}={value}\n")
    else:
        print(f"{key}={value}")


if __name__ == "__main__":
    sys.exit(main())

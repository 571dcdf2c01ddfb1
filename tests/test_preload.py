"""Packages a submission uses, imported once in its apps' template (`harness.hosting.preload`):
only those whose import cannot tell a forked app from a fresh one, only the grader's own copies,
and never for a submission that ships a module a fresh app would import in their place."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import httpx
import pytest

from harness import plugin
from harness.hosting import preload
from harness.hosting.app_pool import AppPool
from harness.hosting.launcher import PASSED_THROUGH, AppProcess, scenario_settings
from harness.hosting.sandbox import Limits
from harness.hosting.template import Template

pytest_plugins = ["pytester"]

# What an app may be given in its environment: a shared package's import must read none of it.
APP_NAMES = {*PASSED_THROUGH, "PYTHONUNBUFFERED", *scenario_settings("http://127.0.0.1:9/v1")}

# As the template does: imports `WARM`, then `name`, this time with os.environ replaced by a
# mapping that notes every name read ("*": all of them, by iterating or copying) and the module
# that read it; says what was read, whether certificates were loaded (which reads SSL_CERT_FILE,
# an app's setting, below Python) and how many threads then run.
PROBE = """
import collections.abc, importlib, json, os, ssl, sys, threading
from harness.hosting.template import WARM

for module in WARM:
    importlib.import_module(module)

HELPERS = {"_collections_abc", "collections.abc", "posixpath", "genericpath", "os", "__main__"}

class Recording(collections.abc.MutableMapping):
    def __init__(self, real):
        self.real, self.read = real, set()
    def note(self, key):
        frame = sys._getframe(2)
        while frame.f_back is not None and frame.f_globals.get("__name__") in HELPERS:
            frame = frame.f_back
        self.read.add((key, frame.f_globals.get("__name__")))
    def __getitem__(self, key):
        self.note(key)
        return self.real[key]
    def __setitem__(self, key, value):
        self.real[key] = value
    def __delitem__(self, key):
        del self.real[key]
    def __iter__(self):
        self.note("*")
        return iter(self.real)
    def __len__(self):
        return len(self.real)
    def copy(self):
        self.note("*")
        return dict(self.real)

certificates = []
for method in ("load_default_certs", "load_verify_locations", "set_default_verify_paths"):
    def noting(self, *args, _method=getattr(ssl.SSLContext, method), **kwargs):
        certificates.append(1)
        return _method(self, *args, **kwargs)
    setattr(ssl.SSLContext, method, noting)

environ = os.environ = Recording(os.environ)
importlib.import_module(sys.argv[1])
seen = {"read": sorted(environ.read), "certificates": len(certificates)}
print(json.dumps({**seen, "threads": threading.active_count()}))
"""

# Read of an app's environment by the standard library, as any process's first import of it reads
# it, and harmless: sysconfig works out the user's base (~/.local) from HOME, which no app's
# behaviour depends on (zoneinfo imports it; pydantic imports zoneinfo).
HARMLESS = {("HOME", "sysconfig")}


@pytest.mark.parametrize("name", preload.SHARED.values())
def test_a_shared_packages_import_reads_nothing_an_app_is_given_and_starts_no_thread(
    name: str,
) -> None:
    """What makes importing it ahead safe: a fresh app would import it the same way, whatever its
    settings, HOME or folder (a thread would not survive the fork). It may read names no app is
    given (openai reads OPENAI_LOG, say): those are unset for the template's import as for the
    app's."""
    if importlib.util.find_spec(name.partition(".")[0]) is None:
        pytest.skip(f"{name} is not installed here")
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, name], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.splitlines()[-1])
    read = {(variable, reader) for variable, reader in seen["read"]}
    of_an_app = {(v, reader) for v, reader in read if v in APP_NAMES or v == "*"} - HARMLESS
    assert not of_an_app, f"importing {name} reads {sorted(of_an_app)} of an app's environment"
    assert seen["certificates"] == 0 and seen["threads"] == 1


def make_submission(folder: Path, app: str, **beside: str) -> Path:
    package = folder / "exercise_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(app))
    for name, text in beside.items():
        (folder / name).write_text(text)
    return folder


def test_the_shared_packages_a_submission_imports_are_found_without_running_it(
    tmp_path: Path,
) -> None:
    app = """
        import os, sys
        import jsonschema.validators
        from openai import AsyncOpenAI
        from . import helpers
        import not_installed_anywhere
        raise SystemExit("never run")
    """
    folder = make_submission(tmp_path, app)
    (folder / "exercise_app" / "broken.py").write_text("def (:\n")  # the app meets it itself
    (folder / "exercise_app" / "models.py").write_text("from pydantic import BaseModel\n")
    installed = [name for name in preload.SHARED if importlib.util.find_spec(name)]
    assert preload.shared_imports(folder) == tuple(preload.SHARED[name] for name in installed)
    assert "jsonschema" in installed  # a test dependency: the check above is not empty


def test_nothing_is_shared_when_a_submission_imports_none_of_them(tmp_path: Path) -> None:
    folder = make_submission(tmp_path, "import httpx\nimport tenacity\nfrom . import jsonschema\n")
    assert preload.shared_imports(folder) == ()


@pytest.mark.parametrize(
    "beside",
    [
        {"typing_extensions.py": "# a fresh app imports this one, not the installed one\n"},
        {"json.py": "# and this one instead of the standard library's\n"},
    ],
)
def test_nothing_is_shared_when_the_submission_ships_a_module_they_would_import(
    tmp_path: Path, beside: dict[str, str]
) -> None:
    folder = make_submission(tmp_path, "import jsonschema\n", **beside)
    assert preload.shared_imports(folder) == ()


def test_nothing_is_read_of_a_submission_with_more_code_than_an_app_has(tmp_path: Path) -> None:
    """Parsing is paid in the grader's time and memory, beside other grades: a hostile
    submission's megabytes of code are not parsed, and it gets nothing imported ahead."""
    folder = make_submission(tmp_path, "import jsonschema\n")
    (folder / "exercise_app" / "bulk.py").write_text("x = 1\n" * (preload.MOST_BYTES // 6 + 1))
    assert preload.shared_imports(folder) == ()


def test_a_harness_folder_beside_the_app_does_not_stop_the_sharing(tmp_path: Path) -> None:
    """A candidate's repository holds the grader's own package, which the shared ones never
    import."""
    folder = make_submission(tmp_path, "import jsonschema\n")
    (folder / "harness").mkdir()
    (folder / "harness" / "__init__.py").write_text("")
    assert preload.shared_imports(folder) == ("jsonschema",)


SETTINGS = {"FAULTFIRST_TEST_SETTING": "on"}

# Says whether jsonschema was loaded before the app's own import of it.
APP = """
    import sys

    PRELOADED = "jsonschema" in sys.modules

    import jsonschema
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def answer(request):
        return JSONResponse({"preloaded": PRELOADED, "draft": jsonschema.Draft7Validator.__name__})

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/api/answer", answer, methods=["POST"])]
    )
"""


def ask(app: AppProcess) -> dict[str, typing.Any]:
    reply = httpx.post(app.url + "/api/answer", json={"question": "?"}, trust_env=False)
    reply.raise_for_status()
    body: dict[str, typing.Any] = reply.json()
    return body


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the template needs Linux")
@pytest.mark.parametrize("share", [("jsonschema",), ()])
def test_a_forked_app_finds_the_shared_packages_loaded(
    tmp_path: Path, share: tuple[str, ...]
) -> None:
    template = Template.start(share)
    try:
        folder = make_submission(tmp_path, APP)
        with AppProcess(folder, SETTINGS, limits=Limits(), template=template) as app:
            assert ask(app)["preloaded"] == bool(share)
    finally:
        template.close()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the template needs Linux")
def test_a_pool_shares_them_in_the_template_it_starts(tmp_path: Path) -> None:
    folder = make_submission(tmp_path, APP)
    pool = AppPool(folder, "subprocess", limits=Limits(), share=("jsonschema",))
    try:
        app = pool.start(SETTINGS)
        try:
            assert isinstance(app, AppProcess) and ask(app)["preloaded"]
        finally:
            pool.stop(app)
    finally:
        pool.close()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the template needs Linux")
def test_a_grading_run_shares_what_its_submission_imports(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    folder = str(make_submission(tmp_path / "submission", APP))
    given = ["--faultfirst-submission", folder, "--faultfirst-isolation", "none"]
    forked = pytester.parseconfigure(*given, "--faultfirst-app-mode", "subprocess")
    assert forked.stash[plugin.FORKED] and forked.stash[plugin.SHARED] == ("jsonschema",)
    threaded = pytester.parseconfigure(*given, "--faultfirst-app-mode", "thread")
    assert threaded.stash[plugin.SHARED] == ()

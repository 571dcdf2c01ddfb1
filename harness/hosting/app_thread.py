"""Run the app under test inside the grader's own process, in a uvicorn thread.

Starting an app this way takes a few milliseconds instead of the few hundred a child process
needs, so every scenario can have an app of its own. The price is isolation: the app shares the
grader's interpreter, so `faultfirst grade` uses child processes (`launcher.AppProcess`)
for submissions it does not trust.

Every start imports the submission afresh (its modules are dropped from ``sys.modules`` first), so
no state survives from one scenario to the next, and the settings are in ``os.environ`` from the
import until the app stops, wherever the app reads them.
"""

from __future__ import annotations

import ast
import functools
import importlib
import logging
import os
import sys
import threading
import traceback
import typing
from pathlib import Path

from .launcher import APP, AppDidNotStart, last_error_line, wait_until_healthy
from .server import ServerError, ServerThread


class AppThread:
    """The app in `folder` (which holds the ``exercise_app`` package), served in a thread."""

    def __init__(
        self, folder: str | os.PathLike[str], settings: typing.Mapping[str, str], *, app: str = APP
    ) -> None:
        self.folder = Path(folder).resolve()
        self.settings = dict(settings)
        self.app = app
        self._server: ServerThread | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._log = _Captured()

    def start(self, timeout: float = 15.0) -> None:
        """Import the app, serve it, and wait until ``GET /healthz`` answers, or raise
        `AppDidNotStart` with the reason in one line."""
        package = self.app.split(".")[0]
        if not (self.folder / package).is_dir():
            raise AppDidNotStart(f"{self.folder} has no {package}/ folder to run")
        _serialise_ast_parse()
        self._set_environ()
        application = self._import(timeout)
        logger = logging.getLogger("uvicorn.error")
        logger.addHandler(self._log)
        self._server = ServerThread(application, lifespan="on", graceful_timeout=0.1, name="app")
        try:
            self._server.start(timeout)
        except ServerError as error:
            raise AppDidNotStart(f"the app stopped while starting: {self._reason(str(error))}")
        finally:
            logger.removeHandler(self._log)
        wait_until_healthy(self.url, timeout, lambda: None, lambda: self._reason("no reason given"))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving at once (requests still running are cancelled, then the app's lifespan
        shuts down) and put the environment back."""
        try:
            if self._server is not None:
                self._server.stop_now(timeout)
        finally:
            self._restore_environ()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the app first"
        return self._server.url

    def exit_reason(self, wait: float = 0.0) -> str | None:
        """None: an app in a thread cannot end on its own without taking the grader with it."""
        return None

    def output(self) -> str:
        return "\n".join(self._log.lines)

    def __enter__(self) -> AppThread:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _import(self, timeout: float) -> typing.Any:
        """Import ``module:attribute`` in a helper thread, so an import that hangs cannot hang
        the grader (the thread is left behind, as a daemon)."""
        module_name, _, attribute = self.app.partition(":")
        _forget(module_name.split(".")[0])
        sys.path.insert(0, str(self.folder))
        result: list[typing.Any] = []
        failure: list[BaseException] = []

        def load() -> None:
            try:
                result.append(getattr(importlib.import_module(module_name), attribute))
            except BaseException as error:  # the submission's error, reported below
                failure.append(error)

        global _hung_import
        if _hung_import is not None and _hung_import.is_alive():
            raise AppDidNotStart(
                "an earlier import of the app never finished, and holds Python's import lock; "
                "grade it with --faultfirst-app-mode subprocess"
            )
        loader = threading.Thread(target=load, name="app-import", daemon=True)
        loader.start()
        loader.join(timeout)
        if loader.is_alive():
            _hung_import = loader
            raise AppDidNotStart(f"importing {module_name} took over {timeout:g}s")
        if failure:
            error = failure[0]
            where = _last_frame_in(traceback.extract_tb(error.__traceback__), self.folder)
            raise AppDidNotStart(
                f"the app failed to import: {type(error).__name__}: {error}{where}"
            ) from None
        return result[0]

    def _set_environ(self) -> None:
        for name, value in self.settings.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environ(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()
        if str(self.folder) in sys.path:
            sys.path.remove(str(self.folder))

    def _reason(self, fallback: str) -> str:
        return last_error_line(self.output()) if self._log.lines else fallback


class _Captured(logging.Handler):
    """Keeps what uvicorn logs while the app starts: a failing startup is logged, not raised."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.lines.append(f"{type(error).__name__}: {error}")


_AST_LOCK = threading.Lock()
_parsing = threading.local()  # whether this thread is inside `ast.parse`
_hung_import: threading.Thread | None = None  # an import that never returned holds the import lock


def _serialise_ast_parse() -> None:
    """Let one thread at a time use `ast.parse`: CPython's ast module keeps its recursion depth
    per interpreter, not per thread, and two threads parsing at once can fail with "SystemError:
    AST constructor recursion depth mismatch" (python/cpython#106905, pytest-dev/pytest#10763).
    Here they would: Python 3.11 parses source lines to format tracebacks, so an app thread logging
    an error while pytest reports a failed scenario crashed the whole run now and then."""
    if not getattr(ast.parse, "serialised", False):
        ast.parse = _serialised(ast.parse)


def _serialised(parse: typing.Callable[..., typing.Any]) -> typing.Callable[..., typing.Any]:
    """`parse` behind `_AST_LOCK`.

    A parse can start inside another on the same thread: the garbage collector, run by the
    outer parse's allocations, finalizes an asyncio task whose error nobody read, and logging that
    error formats a traceback, which parses source. Waiting for the lock would then deadlock the
    thread (it hung a whole grading run), and parsing anyway would break the outer parse's depth
    count, so the inner parse fails with a SyntaxError instead: the callers that parse while
    formatting a traceback (the traceback module's caret anchors, pytest's statement ranges) take
    it to mean "no tree here" and go on without it.
    """

    @functools.wraps(parse)
    def serialised(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        if getattr(_parsing, "active", False):
            raise SyntaxError("ast.parse started inside another parse on the same thread")
        with _AST_LOCK:
            _parsing.active = True
            try:
                return parse(*args, **kwargs)
            finally:
                _parsing.active = False

    serialised.serialised = True  # type: ignore[attr-defined]
    return serialised


def _forget(package: str) -> None:
    for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
        del sys.modules[name]


def _last_frame_in(frames: traceback.StackSummary, folder: Path) -> str:
    """`` (app.py, line 3)`` for the submission's own frame nearest the error, if any."""
    own = [frame for frame in frames if frame.filename.startswith(str(folder))]
    if not own:
        return ""
    frame = own[-1]
    return f" ({Path(frame.filename).relative_to(folder)}, line {frame.lineno})"

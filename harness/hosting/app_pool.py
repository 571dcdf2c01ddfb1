"""A fresh app under test for every scenario, started in the chosen mode.

A scenario must not inherit what an earlier one did to the app (a circuit breaker left open, a
cache, a task still running), so each gets an app of its own. In thread mode that costs a few
milliseconds. In subprocess mode the pool forks each app from a warm template (`template`), where
it can, instead of starting an interpreter that imports uvicorn first (~0.35 s of CPU); either
way it starts the next scenario's app in the background while the current scenario runs.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import typing
from pathlib import Path

from .app_thread import AppThread
from .launcher import OWN_URL, AppDidNotStart, AppProcess, forkable
from .sandbox import Limits
from .template import Template, TemplateError

MODES = ("thread", "subprocess")


class RunningApp(typing.Protocol):
    @property
    def url(self) -> str: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def output(self) -> str: ...

    def exit_reason(self, wait: float = ...) -> str | None: ...


class AppPool:
    """Apps of the submission in `folder`. In subprocess mode, each keeps `limits`, runs on
    `python` and, if `box` names one (of `isolation`'s levels), in a box of its own (thread mode
    has none of these: the app shares the grader's process). Forked apps come from `template`
    (a lane's channel to the run's shared one) or, without one, from a template of the pool's
    own, which imports `share` ahead of them (`preload`); if it is killed, the pool starts its
    own."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        mode: str = "thread",
        start_timeout: float = 15.0,
        *,
        limits: Limits | None = None,
        python: str = sys.executable,
        box: str | None = None,
        template: Template | None = None,
        share: tuple[str, ...] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown app mode {mode!r}; choose one of {', '.join(MODES)}")
        self.folder = Path(folder)
        self.mode = mode
        self.start_timeout = start_timeout
        self.limits = limits
        self.python = python
        self.box = box
        self.share = share
        self._failures: dict[frozenset[tuple[str, str]], AppDidNotStart] = {}
        self._spare: tuple[dict[str, str], concurrent.futures.Future[RunningApp]] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="app-spare")
        self._template = template
        if template is None and mode == "subprocess":
            self._template = self._start_template()

    def start(
        self,
        settings: typing.Mapping[str, str],
        upcoming: typing.Mapping[str, str] | None = None,
    ) -> RunningApp:
        """A running app with `settings`, or `AppDidNotStart` (at once, if it failed before with
        the same settings, but for its own URL of the fake's: an app that cannot import will not
        import on the next try either).

        `upcoming` are the settings the next scenario will ask for, if there is one: in
        subprocess mode, its app starts in the background now."""
        settings = dict(settings)
        key = frozenset((name, value) for name, value in settings.items() if name != OWN_URL)
        if key in self._failures:
            raise self._failures[key]
        if self._template is not None and not self._template.running:
            # Killed (an unboxed app can kill what its user runs): its spare died with it.
            self._discard_spare()
            self._template.close()
            self._template = self._start_template()
        try:
            app = self._take_spare(settings) or self._started(settings)
        except AppDidNotStart as error:
            self._failures[key] = error
            raise
        if self.mode == "subprocess" and upcoming is not None:
            upcoming = dict(upcoming)
            self._spare = (upcoming, self._executor.submit(self._started, upcoming))
        return app

    def stop(self, app: RunningApp) -> None:
        """Stop `app` at once: it has nothing to finish once its scenario has ended. A child is
        killed; a thread gets 0.1 s, then its event loop is closed, cancelling what still runs."""
        app.stop(0 if isinstance(app, AppProcess) else 5.0)

    def close(self) -> None:
        self._discard_spare()
        self._executor.shutdown(wait=True)
        if self._template is not None:
            self._template.close()

    def _start_template(self) -> Template | None:
        """The template apps are forked from (`harness.hosting.template`), where they can be
        (`launcher.forkable`); None elsewhere."""
        if not forkable(self.python, self.box, self.limits):
            return None
        try:
            return Template.start(self.share)
        except (OSError, TemplateError):
            return None  # apps start the exec'd way: slower, the same otherwise

    def _started(self, settings: dict[str, str]) -> RunningApp:
        app: RunningApp
        if self.mode == "thread":
            app = AppThread(self.folder, settings)
        else:
            app = AppProcess(
                self.folder,
                settings,
                limits=self.limits,
                python=self.python,
                box=self.box,
                template=self._template,
            )
        try:
            app.start(self.start_timeout)
        except BaseException:
            self.stop(app)
            raise
        return app

    def _take_spare(self, settings: dict[str, str]) -> RunningApp | None:
        if self._spare is None:
            return None
        if self._spare[0] != settings:
            self._discard_spare()
            return None
        spare, self._spare = self._spare[1], None
        return spare.result()

    def _discard_spare(self) -> None:
        if self._spare is None:
            return
        future, self._spare = self._spare[1], None
        try:
            self.stop(future.result())
        except AppDidNotStart:
            pass

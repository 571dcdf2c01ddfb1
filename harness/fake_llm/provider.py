"""`FakeLLM`: the fault-injecting fake provider, as tests and tools hold it."""

from __future__ import annotations

import hashlib
import secrets
import typing

from ..hosting.server import ServerThread
from .app import build_app
from .faults import Fault
from .ledger import Call, Ledger
from .pacer import Pacer
from .plan import FaultPlan
from .playback import Inflight

DEFAULT_MODELS = ("fake-large", "fake-small")


class FakeLLM:
    """An OpenAI-compatible provider that misbehaves on cue and records everything it does.

    ::

        with FakeLLM() as fake:                     # serving on 127.0.0.1, a free port
            fake.script(f.error(503), f.error(429, retry_after=0.2))
            ...                                     # point the app at fake.base_url
            assert [c.status for c in fake.calls] == [503, 429, 200]

    Faults come from `script` (used once each, in order), then `always` rules, then the profile
    (`instant` by default: no delays, no faults). Everything is deterministic for a given seed.
    """

    def __init__(
        self,
        *,
        models: typing.Sequence[str] = DEFAULT_MODELS,
        seed: int = 0,
        profile: str = "instant",
        api_key: str | None = None,
        port: int = 0,
        admin: bool = False,
    ) -> None:
        self.plan = FaultPlan(models=models, seed=seed, profile=profile)
        self.ledger = Ledger()
        # Requests through another app's URL than the attended one (`url_for`, `attend`): played
        # as the instant profile, from books of their own, never touching the scenario's.
        self.aside = Ledger()
        self._aside_plan = FaultPlan(models=models, seed=seed)
        self._secret = secrets.token_hex(16)
        self._attended: str | None = None
        self.inflight = Inflight()
        self.pacer = Pacer()  # the streams' token timer, in the server's thread
        self.api_key = api_key
        # The admin routes (`admin_url`) are for `faultfirst fake-llm`, where a person drives the
        # fake over HTTP; an app under test must have nothing to find, so graded runs go without.
        self.admin_token = secrets.token_urlsafe(12) if admin else None
        self.app = build_app(self)
        # Idle connections are kept far longer than a client keeps them (httpx: 5 s), so a client
        # never sends a request on a connection the fake is closing at that very moment: such a
        # request would fail without reaching the ledger, and look like an extra attempt.
        self._server = ServerThread(
            self.app, port=port, lifespan="off", graceful_timeout=0.2, keep_alive=75, name="fake-llm"
        )

    # -- what scenario authors use ----------------------------------------------------------------

    def script(self, *faults: Fault, model: str | None = None, prompt_contains: str | None = None) -> None:
        """Play these faults on the next matching requests, one each, in order."""
        self.plan.script(faults, model=model, prompt_contains=prompt_contains)

    def always(self, fault: Fault, *, model: str | None = None, prompt_contains: str | None = None) -> None:
        """Play this fault on every matching request not taken by a script, e.g. a model down."""
        self.plan.always(fault, model=model, prompt_contains=prompt_contains)

    def use_profile(self, name: str, *, seed: int | None = None) -> None:
        """Draw unscripted requests' faults from a named profile: instant, calm, realistic, outage."""
        self.plan.use_profile(name, seed=seed)

    @property
    def calls(self) -> list[Call]:
        """Copies of every request recorded so far, oldest first."""
        return self.ledger.calls()

    @property
    def models(self) -> tuple[str, ...]:
        return self.plan.models

    # -- one app at a time ---------------------------------------------------------------------

    def url_for(self, key: str) -> str:
        """A base URL of one app's own (``.../<token>/v1``; the token hides `key`, a scenario's
        node id). Its requests count, in `ledger` and `plan`, only while `attend(key)` holds:
        before, an app starting up in the background; after, one whose scenario has ended,
        still sending as it is stopped. Those are answered as the instant profile would, in
        `aside`, so that they can neither land in another scenario's ledger nor take its
        scripted faults nor draw on its profile."""
        return f"{self.url}/{self._token(key)}/v1"

    def attend(self, key: str | None) -> None:
        """Count the requests through `url_for(key)` from now on (None: no app's); requests
        through `base_url` always count."""
        self._attended = None if key is None else self._token(key)

    def books_for(self, token: str | None) -> tuple[Ledger, FaultPlan]:
        """Where a request through the URL with `token` (None: `base_url`) is recorded and
        planned."""
        if token is None or token == self._attended:
            return self.ledger, self.plan
        return self.aside, self._aside_plan

    def _token(self, key: str) -> str:
        return hashlib.sha256(f"{self._secret}\0{key}".encode()).hexdigest()[:16]

    def reset(self, *, seed: int | None = None) -> None:
        """Back to a fresh provider: no faults, an empty ledger, and no response still playing."""
        self.inflight.abort_all()
        self.plan.clear(seed=seed)
        self.ledger.clear()
        self.aside.clear()

    # -- serving ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self.inflight.abort_all()
        self._server.stop()

    def __enter__(self) -> FakeLLM:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:43121``."""
        return self._server.url

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL (``.../v1``)."""
        return f"{self.url}/v1"

    @property
    def admin_url(self) -> str:
        """The ledger and plan over HTTP: ``GET {admin_url}/ledger``, ``POST {admin_url}/plan``
        (a fake made with ``admin=True`` only)."""
        if self.admin_token is None:
            raise RuntimeError("this fake has no admin routes: make it with FakeLLM(admin=True)")
        return f"{self.url}/_faultfirst/{self.admin_token}"

    def find_transport(self, client: typing.Any) -> typing.Any:
        return self._server.find_transport(client)

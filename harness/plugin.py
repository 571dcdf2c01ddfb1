"""The faultfirst pytest plugin (registered through the ``pytest11`` entry point).

For now it gives tests the fake provider:

- ``fake_llm``: a fresh-looking `FakeLLM` for each test (no faults, empty ledger);
- ``fake_llm_server``: the same provider, one per session (starting one costs ~25 ms, stopping
  one ~0.15 s, so tests share it and `fake_llm` resets it around each test).
"""

from __future__ import annotations

import typing

import pytest

from .fake_llm import FakeLLM


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultfirst", "faultfirst: grade LLM apps under injected faults")
    group.addoption(
        "--fault-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for the fake provider's answers, jitter and fault profiles (default: 0). "
        "The same seed replays the same faults.",
    )


@pytest.fixture(scope="session")
def fake_llm_server(pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The session's fake provider, serving on 127.0.0.1 and a free port."""
    with FakeLLM(seed=pytestconfig.getoption("fault_seed")) as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM, pytestconfig: pytest.Config) -> typing.Iterator[FakeLLM]:
    """The fake provider, reset for this test: instant answers, no faults, an empty ledger."""
    seed = pytestconfig.getoption("fault_seed")
    fake_llm_server.reset(seed=seed)
    yield fake_llm_server
    fake_llm_server.reset(seed=seed)

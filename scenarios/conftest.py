"""Scenarios run on asyncio, whatever async libraries are installed."""

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"

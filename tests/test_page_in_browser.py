"""The page as a person uses it: a real headless Chromium asks a question and reads the answer.

Needs Debian's chromium (CI installs it) and the playwright package (the test extra); without
either, these tests are skipped with the reason.
"""

import shutil
import typing
from pathlib import Path

import pytest

from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f
from harness.hosting.launcher import AppProcess, scenario_settings

from solutions import REFERENCE, build_solution

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
# As this machine's notes advise: without these, Chromium tries to reach Google's hosts at start.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> typing.Iterator[typing.Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: typing.Any) -> typing.Iterator[typing.Any]:
    page = browser.new_page()
    yield page
    page.close()


def ask(page: typing.Any, app: AppProcess, question: str) -> None:
    """Open the app's page and ask `question` as a person would: type, then click."""
    page.goto(f"{app.url}/")
    page.fill("#question", question)
    page.click("button")


@pytest.fixture(scope="module")
def starter(fake_llm_server: FakeLLM) -> typing.Iterator[AppProcess]:
    with AppProcess(ROOT, scenario_settings(fake_llm_server.base_url)) as app:
        yield app


def test_the_starter_page_shows_the_answer_and_the_model(
    page: typing.Any, starter: AppProcess, fake_llm: FakeLLM
) -> None:
    ask(page, starter, "What does retrieval do to accuracy?")
    page.wait_for_selector("#meta:has-text('Answered by fake-large')", timeout=5000)
    [call] = fake_llm.calls
    assert page.inner_text("#answer") == call.text


def test_the_starter_page_says_when_the_answer_failed(
    page: typing.Any, starter: AppProcess, fake_llm: FakeLLM
) -> None:
    fake_llm.always(f.error(503))
    ask(page, starter, "Anything?")
    page.wait_for_selector("#answer.error", timeout=5000)
    assert "500" in page.inner_text("#answer")


@pytest.fixture(scope="module")
def reference(
    fake_llm_server: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> typing.Iterator[AppProcess]:
    folder = build_solution(tmp_path_factory.mktemp("reference"), REFERENCE)
    with AppProcess(folder, scenario_settings(fake_llm_server.base_url)) as app:
        yield app


def test_the_reference_page_shows_the_answer_while_it_streams(
    page: typing.Any, reference: AppProcess, fake_llm: FakeLLM
) -> None:
    fake_llm.always(f.ok(tokens=30, token_delay=0.1))  # 3 s of writing
    ask(page, reference, "What does retrieval do to accuracy?")
    fake_llm.ledger.wait_for_sync(
        lambda calls: len(calls) == 1 and calls[0].tokens >= 5, what="5 tokens written"
    )
    page.wait_for_function("document.getElementById('answer').textContent.length > 0", timeout=2000)
    partial = page.inner_text("#answer")
    # Read with 2.5 s of writing still to come: the page shows a strict prefix of the answer.
    assert fake_llm.calls[0].ended_at is None
    page.wait_for_selector("#meta:has-text('fake-large')", timeout=6000)
    [call] = fake_llm.calls
    assert call.text.startswith(partial) and len(partial) < len(call.text)
    assert page.inner_text("#answer") == call.text

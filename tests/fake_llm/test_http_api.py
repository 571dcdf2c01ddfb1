"""The fake's HTTP surface outside the faults: the model list, bad requests answered in the
provider's error shape, API-key checking, and the admin API behind its secret path."""

from __future__ import annotations

import socket
import typing

import httpx
import pytest

from harness.fake_llm import FakeLLM
from harness.fake_llm import faults as f

from .helpers import MODEL, OTHER_MODEL, chat, client, loopback_client

pytestmark = pytest.mark.anyio


def assert_provider_error(response: httpx.Response, status: int, message_part: str) -> dict[str, typing.Any]:
    """The response is `status` with OpenAI's error body, whose message mentions `message_part`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    assert all(isinstance(error[key], str) and error[key] for key in ("message", "type", "code"))
    assert message_part in error["message"]
    return typing.cast(dict[str, typing.Any], error)


async def test_models_lists_the_served_models(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        response = await http.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL, OTHER_MODEL]
    assert all(m["object"] == "model" for m in body["data"])


# -- bad requests ----------------------------------------------------------------------------------


async def test_unknown_model_is_a_404_in_the_provider_shape(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=chat(model="gpt-4o"))
    error = assert_provider_error(response, 404, "The model `gpt-4o` does not exist")
    assert (error["type"], error["code"]) == ("invalid_request_error", "model_not_found")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            b'{"model": "fake-large", "messages": [', "could not parse the JSON body", id="malformed JSON"
        ),
        pytest.param(b"[1, 2]", "must be a JSON object", id="not an object"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "hi"}]}', "must provide a model", id="no model"
        ),
        pytest.param(b'{"model": "fake-large"}', "'messages' must be a non-empty array", id="no messages"),
        pytest.param(
            b'{"model": "fake-large", "messages": []}',
            "'messages' must be a non-empty array",
            id="empty messages",
        ),
        pytest.param(
            b'{"model": "fake-large", "messages": ["hi"]}',
            "'messages' must be a non-empty array",
            id="messages not objects",
        ),
    ],
)
async def test_a_malformed_request_is_a_400_in_the_provider_shape(
    fake_llm: FakeLLM, content: bytes, reason: str
) -> None:
    async with client(fake_llm) as http:
        response = await http.post(
            "/chat/completions", content=content, headers={"content-type": "application/json"}
        )
    error = assert_provider_error(response, 400, reason)
    assert error["type"] == "invalid_request_error"
    [call] = fake_llm.calls
    assert (call.outcome, call.status) == ("rejected", 400)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nonsense", 404),
        ("POST", "/v2/chat/completions", 404),
        ("GET", "/v1/chat/completions", 405),
    ],
)
async def test_an_unknown_path_or_method_is_answered_in_json(
    fake_llm: FakeLLM, method: str, path: str, status: int
) -> None:
    async with loopback_client(fake_llm.url) as http:
        response = await http.request(method, path)
    error = assert_provider_error(response, status, f"Unknown request URL: {method} {path}.")
    assert error["code"] == "unknown_url"
    assert fake_llm.calls == []  # not a chat completion: nothing to record


def test_a_client_gone_before_its_body_arrived_is_recorded_as_disconnected(fake_llm: FakeLLM) -> None:
    host, port = fake_llm.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\""
        )
    [call] = fake_llm.ledger.wait_for_sync(lambda calls: len(calls) == 1)
    assert (call.outcome, call.fault, call.status) == ("disconnected", "none", None)
    assert call.disconnected


async def test_content_parts_in_messages_are_understood(fake_llm: FakeLLM) -> None:
    body = chat()
    body["messages"] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Summarise"}, {"type": "text", "text": "the papers."}],
        },
    ]
    async with client(fake_llm) as http:
        response = await http.post("/chat/completions", json=body)
    assert response.status_code == 200
    assert fake_llm.calls[0].prompt == "system: Be brief.\nuser: Summarise the papers."


async def test_an_api_key_is_enforced_when_the_fake_has_one() -> None:
    with FakeLLM(api_key="sk-test-123") as fake:
        async with client(fake) as http:
            missing = await http.post("/chat/completions", json=chat())
            wrong = await http.post(
                "/chat/completions", json=chat(), headers={"Authorization": "Bearer sk-nope"}
            )
            right = await http.post(
                "/chat/completions", json=chat(), headers={"Authorization": "Bearer sk-test-123"}
            )

        for response in (missing, wrong):
            error = assert_provider_error(response, 401, "Incorrect API key")
            assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
        assert right.status_code == 200
        assert [(c.outcome, c.status) for c in fake.calls] == [
            ("rejected", 401),
            ("rejected", 401),
            ("completed", 200),
        ]
        assert "authorization" not in fake.calls[2].request_headers


async def test_without_an_api_key_any_or_no_authorization_is_accepted(fake_llm: FakeLLM) -> None:
    async with client(fake_llm) as http:
        anonymous = await http.post("/chat/completions", json=chat())
        with_key = await http.post(
            "/chat/completions", json=chat(), headers={"Authorization": "Bearer anything"}
        )
    assert (anonymous.status_code, with_key.status_code) == (200, 200)


# -- the admin API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_fake() -> typing.Iterator[FakeLLM]:
    with FakeLLM(admin=True) as fake:
        yield fake


@pytest.fixture
def fake(admin_fake: FakeLLM) -> typing.Iterator[FakeLLM]:
    """A fake with the admin routes, as `faultfirst fake-llm` serves (the scenarios' has none)."""
    admin_fake.reset()
    yield admin_fake
    admin_fake.reset()


def admin(fake: FakeLLM) -> httpx.AsyncClient:
    return loopback_client(fake.admin_url)


async def test_admin_index_reports_the_plan(fake: FakeLLM) -> None:
    fake.script(f.error(503), f.error(503))
    async with admin(fake) as http:
        response = await http.get("/")
    assert response.json() == {
        "models": [MODEL, OTHER_MODEL],
        "profile": "instant",
        "seed": 0,
        "calls": 0,
        "scripted_faults_left": 2,
    }


async def test_admin_ledger_is_the_ledger_as_json_and_delete_clears_it(fake: FakeLLM) -> None:
    fake.script(f.error(429, retry_after=0.5))
    async with client(fake) as api, admin(fake) as http:
        await api.post("/chat/completions", json=chat())
        await api.post("/chat/completions", json=chat(model=OTHER_MODEL))
        listed = await http.get("/ledger")
        python_view = fake.ledger.to_json()
        deleted = await http.delete("/ledger")
        after = await http.get("/ledger")

    assert listed.status_code == 200
    calls = listed.json()["calls"]
    assert [(c["model"], c["status"], c["fault"]) for c in calls] == [
        (MODEL, 429, "error 429 (retry-after: 0.5)"),
        (OTHER_MODEL, 200, "ok"),
    ]
    assert listed.json() == python_view  # the same data as the Python API's
    assert deleted.status_code == 204
    assert after.json()["calls"] == [] and fake.calls == []


async def test_admin_plan_sets_a_script_narrowed_to_a_model(fake: FakeLLM) -> None:
    plan = {
        "script": [f.error(429, retry_after=0.2).to_dict(), {"kind": "length", "after_tokens": 3}],
        "model": OTHER_MODEL,
    }
    async with admin(fake) as http:
        response = await http.post("/plan", json=plan)
    assert response.status_code == 200
    assert response.json()["scripted_faults_left"] == 2

    async with client(fake) as api:
        untouched = await api.post("/chat/completions", json=chat(model=MODEL))
        limited = await api.post("/chat/completions", json=chat(model=OTHER_MODEL))
        cut = await api.post("/chat/completions", json=chat(model=OTHER_MODEL))

    assert untouched.status_code == 200
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "0.2")
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    assert cut.json()["usage"]["completion_tokens"] == 3


async def test_admin_plan_sets_a_standing_rule_for_matching_prompts(fake: FakeLLM) -> None:
    async with admin(fake) as http:
        response = await http.post(
            "/plan", json={"always": {"kind": "error", "status": 503}, "prompt_contains": "flaky"}
        )
    assert response.status_code == 200

    async with client(fake) as api:
        statuses = [
            (await api.post("/chat/completions", json=chat(prompt))).status_code
            for prompt in ("a flaky one", "a fine one", "flaky again")
        ]
    assert statuses == [503, 200, 503]


async def test_admin_plan_sets_a_profile_and_seed(fake: FakeLLM) -> None:
    async with admin(fake) as http:
        response = await http.post("/plan", json={"profile": "outage", "seed": 42})
    assert response.status_code == 200
    assert (response.json()["profile"], response.json()["seed"]) == ("outage", 42)
    assert (fake.plan.profile, fake.plan.seed) == ("outage", 42)
    async with client(fake) as api:
        assert (await api.post("/chat/completions", json=chat(model=MODEL))).status_code == 503


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        pytest.param({"script": [{"kind": "explode"}]}, "unknown fault 'explode'", id="unknown kind"),
        pytest.param(
            {"script": [{"kind": "ok", "latency": -1}]},
            "latency must be a number of seconds >= 0, got -1",
            id="negative delay",
        ),
        pytest.param(
            {"always": {"kind": "ok", "delay": 1}}, "unknown fault field(s) ['delay']", id="unknown field"
        ),
        pytest.param(
            {"always": {"kind": "error", "status": "503"}},
            "status must be an HTTP error (400-599), got '503'",
            id="status as text",
        ),
        pytest.param(
            {"script": [{"kind": "error", "status": 503}], "model": "gpt-4o"},
            "unknown model 'gpt-4o'",
            id="unknown model",
        ),
        pytest.param({"profile": "chaos"}, "unknown profile 'chaos'", id="unknown profile"),
        pytest.param(["not", "an", "object"], "the plan must be a JSON object", id="not an object"),
    ],
)
async def test_admin_plan_that_makes_no_sense_is_a_400_with_the_reason(
    fake: FakeLLM, plan: typing.Any, reason: str
) -> None:
    async with admin(fake) as http:
        response = await http.post("/plan", json=plan)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert fake.plan.remaining() == 0 and fake.plan.profile == "instant"


async def test_admin_plan_that_is_not_json_is_a_400(fake: FakeLLM) -> None:
    async with admin(fake) as http:
        response = await http.post("/plan", content=b"script: [503]")
    assert response.status_code == 400
    assert "Expecting value" in response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/_faultfirst/ledger", "/_faultfirst/", "/_faultfirst/not-the-token/ledger", "/ledger"]
)
async def test_admin_paths_without_the_token_are_not_found(fake: FakeLLM, path: str) -> None:
    async with loopback_client(fake.url) as http:
        response = await http.get(path)
        deleted = await http.delete(path)
    assert_provider_error(response, 404, "Unknown request URL")
    assert deleted.status_code in (404, 405)
    assert len(fake.admin_token) >= 16  # not guessable by accident


async def test_admin_token_differs_between_fakes(fake: FakeLLM) -> None:
    other = FakeLLM(admin=True)  # not started: the token is chosen when the fake is made
    assert other.admin_token != fake.admin_token
    assert fake.admin_url == f"{fake.url}/_faultfirst/{fake.admin_token}"


async def test_the_scenarios_fake_has_no_admin_routes(fake_llm: FakeLLM) -> None:
    assert fake_llm.admin_token is None
    with pytest.raises(RuntimeError, match="no admin routes"):
        fake_llm.admin_url
    async with loopback_client(fake_llm.url) as http:
        index = await http.get("/_faultfirst/")
        plan = await http.post("/_faultfirst/plan", json={"profile": "instant"})
    assert_provider_error(index, 404, "Unknown request URL")
    assert plan.status_code in (404, 405)


# -- one app at a time: url_for and attend ---------------------------------------------------------


async def test_only_the_attended_apps_requests_count(fake_llm: FakeLLM) -> None:
    """What lanes and background starts rely on: an app starting up before its scenario, or
    still sending after it, never lands in another scenario's ledger nor takes its faults."""
    fake_llm.script(f.error(503))
    earlier, later = fake_llm.url_for("scenario 1"), fake_llm.url_for("scenario 2")
    assert earlier != later and "scenario" not in earlier  # the app learns nothing of its scenario
    async with loopback_client(later) as starting:
        early = await starting.post("/chat/completions", json=chat("warming up"))
    assert early.status_code == 200  # answered plainly, as the instant profile does
    assert fake_llm.calls == []
    fake_llm.attend("scenario 2")
    async with loopback_client(later) as attended, loopback_client(earlier) as straggler:
        late = await straggler.post("/chat/completions", json=chat("still sending"))
        own = await attended.post("/chat/completions", json=chat("the question"))
    assert (late.status_code, own.status_code) == (200, 503)  # the scripted fault went to its app
    assert [call.prompt for call in fake_llm.calls] == ["user: the question"]
    assert [call.prompt for call in fake_llm.aside.calls()] == [
        "user: warming up",
        "user: still sending",
    ]
    async with client(fake_llm) as direct:  # base_url: always counts
        await direct.post("/chat/completions", json=chat("direct"))
    assert [call.prompt for call in fake_llm.calls] == ["user: the question", "user: direct"]


async def test_a_reset_keeps_the_attended_app(fake_llm: FakeLLM) -> None:
    fake_llm.attend("scenario")
    fake_llm.reset()  # as a scenario does mid-way: the model is back
    async with loopback_client(fake_llm.url_for("scenario")) as http:
        await http.post("/chat/completions", json=chat())
    assert len(fake_llm.calls) == 1
    fake_llm.attend(None)
    async with loopback_client(fake_llm.url_for("scenario")) as http:
        await http.post("/chat/completions", json=chat())
    assert len(fake_llm.calls) == 1

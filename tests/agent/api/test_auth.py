"""Optional bearer auth on /v1/*."""

import logging

import pytest

from tests.agent.api.conftest import api_settings
from tests.conftest import running_app

pytestmark = pytest.mark.integration

KEYS = "first-key-abcdef,second-key-123456"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    settings = api_settings(
        tmp_path_factory.mktemp("chroma"), agent_api_keys=KEYS, seed_on_startup=False
    )
    with running_app(settings) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/agent/infer", "/v1/knowledge/documents"])
def test_v1_needs_a_bearer_key(secured, path) -> None:
    response = secured.post(path, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        "Bearer first-key-abcde",
        "Bearer first-key-abcdeff",
        "Basic Zmlyc3Q=",
        "first-key-abcdef",
        "Bearer ",
        "Bearer first-key-abcdef,second-key-123456",
    ],
)
def test_wrong_credentials_are_401(secured, header) -> None:
    response = secured.post(
        "/v1/agent/infer", json={"query": "q"}, headers={"Authorization": header}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("key", KEYS.split(","))
def test_every_configured_key_works(secured, key) -> None:
    response = secured.post(
        "/v1/agent/infer", json={"query": "q"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200


def test_scheme_is_case_insensitive(secured) -> None:
    response = secured.post(
        "/v1/agent/infer",
        json={"query": "q"},
        headers={"Authorization": "bearer second-key-123456"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/docs", "/openapi.json"])
def test_operations_endpoints_stay_open(secured, path) -> None:
    assert secured.get(path).status_code == 200


def test_auth_off_means_open(client) -> None:
    assert client.post("/v1/agent/infer", json={"query": "q"}).status_code == 200


def test_keys_never_reach_the_logs(secured, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secured.post(
        "/v1/agent/infer", json={"query": "q"}, headers={"Authorization": "Bearer first-key-abcdef"}
    )
    secured.post(
        "/v1/agent/infer", json={"query": "q"}, headers={"Authorization": "Bearer not-a-key-999"}
    )
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "first-key-abcdef" not in logged and "not-a-key-999" not in logged
    assert "request" in logged  # the access log did run


def test_rate_limit_is_per_key(tmp_path) -> None:
    settings = api_settings(
        tmp_path, agent_api_keys=KEYS, rate_limit_per_minute=1, seed_on_startup=False
    )
    with running_app(settings) as c:
        first = {"Authorization": "Bearer first-key-abcdef"}
        second = {"Authorization": "Bearer second-key-123456"}
        assert c.post("/v1/agent/infer", json={"query": "q"}, headers=first).status_code == 200
        assert c.post("/v1/agent/infer", json={"query": "q"}, headers=first).status_code == 429
        assert c.post("/v1/agent/infer", json={"query": "q"}, headers=second).status_code == 200


def test_failed_authentication_is_throttled_per_client_with_retry_after(tmp_path) -> None:
    """200 wrong keys from one client: after AUTH_FAILURES_PER_MINUTE failures, 429 with
    Retry-After, before any key is checked (so a guesser learns nothing, even when right)."""
    from fastapi.testclient import TestClient

    settings = api_settings(tmp_path, agent_api_keys=KEYS, seed_on_startup=False)
    assert settings.auth_failures_per_minute == 10
    wrong = {"Authorization": "Bearer not-the-key"}
    right = {"Authorization": "Bearer first-key-abcdef"}
    with running_app(settings) as c:
        statuses = [
            c.post("/v1/agent/infer", json={"query": "q"}, headers=wrong).status_code
            for _ in range(200)
        ]
        print(f"200 wrong keys: {statuses.count(401)} x 401, {statuses.count(429)} x 429")
        assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
        refused = c.post("/v1/agent/infer", json={"query": "q"}, headers=right)
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_auth_failures"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Another client is not affected.
        other = TestClient(c.app, client=("198.51.100.7", 40000))
        assert other.post("/v1/agent/infer", json={"query": "q"}, headers=right).status_code == 200


def test_oversized_headers_are_refused_before_any_work(secured, monkeypatch) -> None:
    """A 1 MB Authorization header: 431 before routing, so auth never compares it."""
    import agent.api.guard

    def compared(*args):
        raise AssertionError("the oversized key was compared")

    monkeypatch.setattr(agent.api.guard, "_matches_any", compared)
    response = secured.post(
        "/v1/agent/infer",
        json={"query": "q"},
        headers={"Authorization": "Bearer " + "k" * 1_000_000},
    )
    assert response.status_code == 431, response.text
    assert response.json()["error"] == "headers_too_large"
    assert "MAX_HEADER_BYTES" in response.json()["detail"]

"""/health, /ready, /metrics, /docs."""

import threading

import anyio
import pytest

from agent import __version__
from tests.agent.api.conftest import api_settings
from tests.conftest import running_app
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def test_health_is_ok_with_the_version(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_health_never_touches_a_dependency(tmp_path) -> None:
    settings = api_settings(
        tmp_path, chroma_host="127.0.0.1", chroma_port=9, redis_url="redis://127.0.0.1:9/0"
    )
    with running_app(settings, wait_seed=False) as c:
        components = c.app.state.components

        async def explode(*args, **kwargs):
            raise AssertionError("/health called a dependency")

        components.store.heartbeat = explode
        components.state.ping = explode
        components.store.search = explode
        assert c.get("/health").status_code == 200


def test_ready_reports_each_dependency(client) -> None:
    body = client.get("/ready").json()
    assert body["status"] == "ready" and body["down"] == []
    checks = body["checks"]
    assert checks["chromadb"]["status"] == "up" and checks["chromadb"]["mode"] == "embedded"
    assert checks["chromadb"]["collection"] == "vaia_kb__hash-v1-768"
    assert checks["redis"]["backend"] == "memory"
    assert checks["llm"] == {"status": "up", "provider": "offline", "model": "extractive-v2"}
    assert checks["knowledge_seed"] == "done"


def test_ready_is_503_before_startup_and_after_shutdown(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from agent.app import create_app

    app = create_app(api_settings(tmp_path))
    with TestClient(app) as c:
        assert c.get("/ready").status_code == 200
    # After the lifespan ended the app refuses readiness (a draining pod leaves the Service).
    response = c.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert c.get("/health").status_code == 200


def test_metrics_expose_the_documented_series(client) -> None:
    client.post("/v1/agent/infer", json={"query": "how do I roll back?"})
    client.post("/v1/agent/infer", json={"query": "how do I roll back?"})
    client.get("/ready")
    text = client.get("/metrics").text
    for series in (
        'vaia_http_requests_total{method="POST",route="/v1/agent/infer",status="200"}',
        'vaia_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/agent/infer",status="200"}',
        'vaia_llm_request_duration_seconds_count{outcome="ok",provider="offline"}',
        'vaia_cache_requests_total{result="hit"}',
        'vaia_cache_requests_total{result="miss"}',
        'vaia_retrieval_duration_seconds_count{outcome="ok"}',
        'vaia_dependency_up{dependency="chromadb"} 1.0',
    ):
        assert series in text, series


def test_unknown_paths_are_labelled_unmatched(client) -> None:
    client.get("/nope/12345")
    text = client.get("/metrics").text
    assert 'route="unmatched",status="404"' in text
    assert "/nope/12345" not in text


def test_openapi_documents_every_endpoint(client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/ready", "/metrics", "/v1/agent/infer", "/v1/knowledge/documents"} <= set(
        spec["paths"]
    )
    assert client.get("/docs").status_code == 200


def test_request_id_is_returned_and_propagated(client) -> None:
    response = client.post(
        "/v1/agent/infer", json={"query": "rollback"}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "bad id; with spaces"})
    assert len(made.headers["x-request-id"]) == 32


def test_answers_while_the_knowledge_base_loads_are_flagged_and_never_cached(tmp_path) -> None:
    """Asked right after /health answers, before the seed has written the runbooks."""
    from fastapi.testclient import TestClient

    from agent.app import create_app
    from agent.wiring import build_components

    components = build_components(api_settings(tmp_path))
    seed_may_write = threading.Event()
    real_ingest = components.service.ingest

    async def held_ingest(*args, **kwargs):
        await anyio.to_thread.run_sync(seed_may_write.wait)
        return await real_ingest(*args, **kwargs)

    components.service.ingest = held_ingest
    query = {"query": "How do I roll back a Deployment?"}
    with TestClient(create_app(components=components)) as c:
        try:
            assert c.get("/health").status_code == 200
            first = c.post("/v1/agent/infer", json=query).json()
            assert first["degraded"] == ["knowledge_base_loading"]
            assert c.post("/v1/agent/infer", json=query).json()["cached"] is False
            ready = c.get("/ready").json()
            assert ready["status"] == "degraded" and ready["down"] == []
            assert ready["degraded"] == ["knowledge_base_loading"]
            assert ready["checks"]["knowledge_seed"] == "running"
        finally:
            seed_may_write.set()
        wait_until(lambda: components.seeding == "done", 30, "the seed")
        loaded = c.post("/v1/agent/infer", json=query).json()
        assert loaded["degraded"] == [] and "kubectl rollout undo" in loaded["answer"]
        assert c.post("/v1/agent/infer", json=query).json()["cached"] is True
        assert c.get("/ready").json()["status"] == "ready"


def test_a_thin_client_without_chroma_host_is_reported_at_once_not_retried(
    tmp_path, monkeypatch
) -> None:
    """Retrying cannot fix a missing CHROMA_HOST in an image that has only chromadb-client."""
    import chromadb

    monkeypatch.setattr(chromadb, "is_client", True)
    with running_app(api_settings(tmp_path), wait_seed=False) as c:
        components = c.app.state.components
        wait_until(lambda: components.seeding.startswith("failed"), 10, "the seed to give up")
        ready = c.get("/ready").json()
        assert ready["down"] == ["chromadb"]
        assert "CHROMA_HOST" in ready["checks"]["chromadb"]["error"]
        assert "CHROMA_HOST" in components.seeding


def test_unknown_http_methods_share_one_metric_label(client) -> None:
    for method in ("PROPFIND", "MKCOL", "LOCK", "X-CUSTOM-123"):
        assert client.request(method, "/health").status_code == 405
    text = client.get("/metrics").text
    assert 'vaia_http_requests_total{method="other",route="/health",status="405"} 4.0' in text
    for method in ("PROPFIND", "MKCOL", "LOCK", "X-CUSTOM-123"):
        assert f'method="{method}"' not in text

"""Dependencies going away mid-test: real redis-server, a real Chroma server, the Gemini stand-in."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from agent.app import create_app
from agent.service import NO_KNOWLEDGE_NOTICE
from devstack.harness.services import in_thread
from tests.agent.api.conftest import api_settings
from tests.conftest import running_app
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

ROLLBACK = {"query": "How do I roll back a Deployment?"}


def metric(client, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_redis_killed_mid_test_answers_keep_coming_uncached(redis_server, tmp_path) -> None:
    settings = api_settings(tmp_path, redis_url=redis_server.url, redis_cooldown_seconds=0)
    with running_app(settings) as c:
        assert c.post("/v1/agent/infer", json=ROLLBACK).json()["cached"] is False
        assert c.post("/v1/agent/infer", json=ROLLBACK).json()["cached"] is True
        assert c.get("/ready").json()["checks"]["redis"]["status"] == "up"

        redis_server.kill()
        for _ in range(3):
            response = c.post("/v1/agent/infer", json=ROLLBACK)
            assert response.status_code == 200
            body = response.json()
            assert body["cached"] is False and "kubectl rollout undo" in body["answer"]
        assert metric(c, 'vaia_cache_requests_total{result="error"}') == 3
        assert metric(c, 'vaia_dependency_up{dependency="redis"}') == 0
        ready = c.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["down"] == ["redis"]
        # Session memory and rate limiting keep working in-process.
        assert c.post("/v1/agent/infer", json={**ROLLBACK, "session_id": "s"}).status_code == 200

        redis_server.start()
        assert c.get("/ready").json()["status"] == "ready"
        assert metric(c, 'vaia_dependency_up{dependency="redis"}') == 1
        assert c.post("/v1/agent/infer", json=ROLLBACK).status_code == 200


def test_chroma_stopped_answers_say_they_have_no_sources(chroma_server, tmp_path) -> None:
    settings = api_settings(tmp_path, **chroma_server.client_settings(chroma_timeout_seconds=2))
    with running_app(settings) as c:
        healthy = c.post("/v1/agent/infer", json=ROLLBACK).json()
        assert healthy["sources"] and healthy["degraded"] == []
        assert (
            c.post(
                "/v1/knowledge/documents",
                json={
                    "documents": [
                        {
                            "id": "pager",
                            "title": "Pager",
                            "text": "The pager rotation changes every Monday at 10:00 UTC.",
                        }
                    ]
                },
            ).status_code
            == 200
        )

        chroma_server.stop()
        try:
            response = c.post(
                "/v1/agent/infer", json={"query": "When does the pager rotation change?"}
            )
            assert response.status_code == 200
            body = response.json()
            assert body["degraded"] == ["retrieval_unavailable"]
            assert body["answer"] == NO_KNOWLEDGE_NOTICE
            assert body["sources"] == [] and body["cached"] is False
            ready = c.get("/ready")
            assert ready.status_code == 200 and ready.json()["down"] == ["chromadb"]
            assert metric(c, 'vaia_degraded_answers_total{reason="retrieval_unavailable"}') == 1
            ingest = c.post(
                "/v1/knowledge/documents",
                json={"documents": [{"id": "new", "title": "t", "text": "x y z"}]},
            )
            assert ingest.status_code == 503 and ingest.json()["error"] == "store_unavailable"
            # A degraded answer is never cached.
            again = c.post(
                "/v1/agent/infer", json={"query": "When does the pager rotation change?"}
            ).json()
            assert again["cached"] is False
        finally:
            chroma_server.start(timeout=60)

        recovered = c.post(
            "/v1/agent/infer", json={"query": "When does the pager rotation change?"}
        ).json()
        assert recovered["degraded"] == []
        assert "every Monday at 10:00 UTC" in recovered["answer"]  # the volume kept the document
        assert c.get("/ready").json()["status"] == "ready"


def test_agent_starts_and_serves_while_chroma_is_down(tmp_path) -> None:
    settings = api_settings(
        tmp_path, chroma_host="127.0.0.1", chroma_port=9, chroma_timeout_seconds=1
    )
    with running_app(settings, wait_seed=False) as c:
        assert c.get("/health").status_code == 200
        body = c.post("/v1/agent/infer", json=ROLLBACK).json()
        # The seed is still retrying, so the knowledge base is loading as well.
        assert body["degraded"] == ["knowledge_base_loading", "retrieval_unavailable"]
        assert c.get("/ready").json()["checks"]["knowledge_seed"] == "running"


def gemini_settings(tmp_path, gemini, **overrides):
    return api_settings(
        tmp_path,
        llm_provider="gemini",
        gemini_api_key=gemini.api_key,
        google_gemini_base_url=gemini.url,
        llm_max_attempts=2,
        llm_retry_initial_seconds=0.01,
        llm_retry_max_seconds=0.02,
        **overrides,
    )


def test_gemini_end_to_end_with_gemini_embeddings(gemini, tmp_path) -> None:
    with running_app(gemini_settings(tmp_path, gemini)) as c:
        body = c.post("/v1/agent/infer", json=ROLLBACK).json()
        assert body["provider"] == "gemini" and body["model"] == "gemini-3.5-flash"
        assert body["answer"].startswith("Per the runbook:") and body["answer"].endswith("[1]")
        assert body["sources"][0]["cited"] is True
        assert (
            c.get("/ready").json()["checks"]["chromadb"]["collection"]
            == "vaia_kb__gemini-embedding-001-768"
        )
        assert gemini.calls("batchEmbedContents")  # the corpus and the query were embedded remotely


def test_gemini_unavailable_falls_back_to_an_extractive_answer(gemini, tmp_path) -> None:
    with running_app(gemini_settings(tmp_path, gemini)) as c:
        gemini.fail("generateContent", 503, times=2)
        body = c.post("/v1/agent/infer", json=ROLLBACK).json()
        assert body["degraded"] == ["llm_unavailable"]
        assert body["provider"] == "offline" and "kubectl rollout undo" in body["answer"]
        assert body["cached"] is False
        assert c.post("/v1/agent/infer", json=ROLLBACK).json()["provider"] == "gemini"


@pytest.mark.parametrize(
    ("status", "times", "expected", "error"),
    [
        (503, 2, 503, "llm_unavailable"),
        (429, 2, 503, "llm_rate_limited"),
        (504, 2, 504, "llm_timeout"),
        (403, 1, 502, "llm_auth"),
        (400, 1, 502, "llm_bad_response"),
    ],
)
def test_gemini_errors_map_to_clear_statuses_without_fallback(
    gemini, tmp_path, status, times, expected, error
) -> None:
    with running_app(gemini_settings(tmp_path, gemini, llm_fallback_offline=False)) as c:
        gemini.fail(
            "generateContent", status, times=times, retry_after="3" if status == 429 else None
        )
        response = c.post("/v1/agent/infer", json=ROLLBACK)
        assert response.status_code == expected
        assert response.json()["error"] == error
        if status == 429:
            assert response.headers["retry-after"] == "3"


def test_auth_failures_are_not_hidden_by_the_fallback(gemini, tmp_path) -> None:
    with running_app(gemini_settings(tmp_path, gemini)) as c:
        gemini.fail("generateContent", 401)
        response = c.post("/v1/agent/infer", json=ROLLBACK)
        assert response.status_code == 502 and response.json()["error"] == "llm_auth"


def test_injected_faults_are_test_only_settings(tmp_path) -> None:
    with running_app(api_settings(tmp_path, fault_error_rate=1.0, seed_on_startup=False)) as c:
        response = c.post("/v1/agent/infer", json=ROLLBACK)
        assert response.status_code == 500 and response.json()["error"] == "injected_fault"


def _timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def test_paused_chroma_never_freezes_health_and_infers_degrade_within_the_timeout(
    chroma_server, tmp_path
) -> None:
    """SIGSTOP keeps Chroma's port open with nobody answering: calls and reconnects hang."""
    settings = api_settings(tmp_path, **chroma_server.client_settings(chroma_timeout_seconds=1))
    with (
        in_thread(create_app(settings)) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        wait_until(
            lambda: http.get("/ready").json()["checks"]["knowledge_seed"] == "done", 60, "seed"
        )
        assert http.post("/v1/agent/infer", json=ROLLBACK).json()["degraded"] == []

        def infers(worker: int) -> list[tuple[float, object]]:
            # One after another: the first fails and drops the connection, the next ones
            # reconnect to the paused server (the path that used to hold a lock for ever).
            return [
                _timed(
                    lambda i=i: http.post(
                        "/v1/agent/infer", json={"query": f"rollback {worker} {i}"}
                    )
                )
                for i in range(3)
            ]

        health: list[float] = []
        with chroma_server.paused(), ThreadPoolExecutor(4) as pool:
            running = [pool.submit(infers, w) for w in range(4)]
            while not all(f.done() for f in running) and len(health) < 60:
                elapsed, response = _timed(lambda: http.get("/health"))
                assert response.status_code == 200
                health.append(elapsed)
                time.sleep(0.1)
            answered = [item for f in running for item in f.result()]

        slowest = max(elapsed for elapsed, _ in answered)
        print(f"Chroma paused: /health max {max(health):.3f} s, infer max {slowest:.2f} s")
        # Generous bounds that separate "answers" from "hangs" (it used to take 20-36 s).
        assert max(health) < 2, f"/health took {max(health):.2f} s while Chroma was paused"
        for elapsed, response in answered:
            assert response.status_code == 200, response.text
            assert response.json()["degraded"] == ["retrieval_unavailable"]
            assert elapsed < 8, f"an infer took {elapsed:.2f} s with CHROMA_TIMEOUT_SECONDS=1"

        # Chroma resumed: the service recovers by itself, no restart.
        wait_until(
            lambda: (
                http.post("/v1/agent/infer", json={"query": "roll back a deploy"}).json()[
                    "degraded"
                ]
                == []
            ),
            20,
            "recovery after SIGCONT",
        )
        assert http.get("/ready").json()["status"] == "ready"


ZORBLAX_QUERY = {"query": "what is the zorblax failover procedure?"}
ZORBLAX_DOC = {
    "id": "zorblax",
    "title": "Zorblax failover",
    "text": "## Failover\n\nThe zorblax failover procedure is to run `zorblaxctl failover --region b`.",
}


def test_ingest_while_redis_hangs_leaves_no_stale_cached_answer(redis_server, tmp_path) -> None:
    """Redis paused (SIGSTOP), so the cache generation cannot be bumped: the ingest is refused
    with a retryable status and writes nothing; once Redis is back the retry succeeds and the
    cached answer that predates it is never served again."""
    settings = api_settings(
        tmp_path, redis_url=redis_server.url, redis_timeout_seconds=0.3, redis_cooldown_seconds=0
    )
    with running_app(settings) as c:
        store = c.app.state.components.store
        before = c.post("/v1/agent/infer", json=ZORBLAX_QUERY).json()
        assert "zorblaxctl" not in before["answer"]
        assert c.post("/v1/agent/infer", json=ZORBLAX_QUERY).json()["cached"] is True

        with redis_server.paused():
            refused = c.post("/v1/knowledge/documents", json={"documents": [ZORBLAX_DOC]})
        after = c.post("/v1/agent/infer", json=ZORBLAX_QUERY).json()
        assert not (after["cached"] and "zorblaxctl" not in after["answer"] and refused.is_success)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "cache_unavailable" and refused.json()["written"] == []
        assert refused.headers["retry-after"]
        assert c.portal.call(store.document_chunk_ids, "zorblax") == []  # nothing written

        retried = c.post("/v1/knowledge/documents", json={"documents": [ZORBLAX_DOC]})
        assert retried.status_code == 200
        fresh = c.post("/v1/agent/infer", json=ZORBLAX_QUERY).json()
        assert fresh["cached"] is False and "zorblaxctl failover" in fresh["answer"]

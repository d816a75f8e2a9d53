"""Auth and the rate limit of /v1/* (agent/api/guard.py) as an ASGI layer in front of the
routes: a refused request's body is never parsed, and every answer of a limited client carries
its X-RateLimit headers, streamed ones included. (What is refused and when: test_auth.py.)"""

import pytest

from tests.agent.api.conftest import api_settings
from tests.conftest import running_app

pytestmark = pytest.mark.integration


def test_a_request_without_a_key_is_refused_before_its_body_is_parsed(tmp_path) -> None:
    settings = api_settings(tmp_path, agent_api_keys="only-key-abcdef", seed_on_startup=False)
    with running_app(settings) as c:
        response = c.post(
            "/v1/agent/infer", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 401  # not 422: the body was never read
        assert response.json() == {
            "detail": "missing bearer token: send Authorization: Bearer <key>",
            "error": "unauthorized",
            "request_id": response.headers["x-request-id"],
        }
        assert c.post("/v1/knowledge/documents", json={}).status_code == 401
        assert c.get("/health").status_code == 200  # operations endpoints stay open


def test_streamed_and_ingest_answers_carry_the_rate_limit_headers(tmp_path) -> None:
    with running_app(api_settings(tmp_path, rate_limit_per_minute=5)) as c:
        stream = c.post("/v1/agent/infer/stream", json={"query": "How do I roll back?"})
        assert stream.status_code == 200 and "event: done" in stream.text
        assert stream.headers["x-ratelimit-limit"] == "5"
        assert stream.headers["x-ratelimit-remaining"] == "4"
        documents = {"documents": [{"title": "Pager", "text": "Rotation on Mondays."}]}
        ingested = c.post("/v1/knowledge/documents", json=documents)
        assert ingested.status_code == 200 and ingested.headers["x-ratelimit-remaining"] == "3"

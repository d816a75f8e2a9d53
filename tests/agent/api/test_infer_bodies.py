"""The infer route writes its JSON body itself (a cache hit is sent as it was stored): the
bodies must still be what the OpenAPI document says, and a hit the miss it repeats."""

import json

import pytest

from agent.api.schemas import InferResponse
from agent.service import _CACHED_FIELDS, PREFIX_CACHE_VALUE_KEY
from tests.agent.api.conftest import api_settings
from tests.conftest import running_app

pytestmark = pytest.mark.integration
PER_RESPONSE = {"cached", "latency_ms", "request_id", "session_id"}


def _pair(client, query: dict) -> tuple[dict, dict]:
    miss = client.post("/v1/agent/infer", json=query)
    hit = client.post("/v1/agent/infer", json=query)
    for response in (miss, hit):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
        InferResponse.model_validate_json(response.content)  # every field, strictly typed
    return miss.json(), hit.json()


@pytest.mark.parametrize(
    "query",
    [
        {"query": 'How do I roll back a Deployment? \u00e9\u2028"quoted" </script>'},
        {"query": "error budget of 99.9% over 30 days", "session_id": "s-1", "top_k": 3},
    ],
)
def test_a_hit_is_the_miss_it_repeats(client, query) -> None:
    miss, hit = _pair(client, query)
    assert miss["cached"] is False and hit["cached"] is True
    assert {k: v for k, v in hit.items() if k not in PER_RESPONSE} == {
        k: v for k, v in miss.items() if k not in PER_RESPONSE
    }
    assert hit["session_id"] == query.get("session_id")
    assert list(hit) == list(miss)  # the same fields, in the same order


def test_hits_through_redis_remember_the_session(redis_url, tmp_path) -> None:
    import redis

    settings = api_settings(tmp_path / "chroma", redis_url=redis_url)
    with running_app(settings) as client:
        query = {"query": "What are the SEV1 incident criteria?", "session_id": "s-2"}
        miss, hit = _pair(client, query)
        assert hit["cached"] is True and hit["answer"] == miss["answer"]
        # The session remembers the cached answer too (its text is read from the stored JSON).
        store = redis.Redis.from_url(redis_url)
        turns = store.lrange("vaia:session:s-2", 0, -1)
        assert [json.loads(t)["text"] for t in turns][-1] == miss["answer"]
        [key] = store.keys("vaia:cache:*")
        fields = json.loads(json.loads(store.get(key))["value"][PREFIX_CACHE_VALUE_KEY])
        assert set(fields) == _CACHED_FIELDS


@pytest.mark.unit
def test_the_keys_of_this_cache_format_are_not_the_previous_ones() -> None:
    """The previous version cached the fields as a dict under these keys; in a rolling update
    both versions share Redis, so the new format lives under other keys."""
    from agent.service import _key_without_history, cache_key, normalize_query

    query = "How do I roll back?"
    previous = cache_key(
        {"provider": "gemini", "model": "m", "space": "s", "query": normalize_query(query),
         "top_k": 4, "history": []}
    )  # fmt: skip
    previous_offline = cache_key(
        {"provider": "offline", "model": "m", "space": "s", "query": normalize_query(query),
         "top_k": 4}
    )  # fmt: skip
    assert _key_without_history("gemini", "m", "s", query, 4) != previous
    assert _key_without_history("offline", "m", "s", query, 4) != previous_offline

"""POST /v1/knowledge/documents."""

import pytest

from tests.agent.api.conftest import api_settings
from tests.conftest import running_app

pytestmark = pytest.mark.integration

URL = "/v1/knowledge/documents"


def test_ingest_then_answer_cites_the_new_document(client) -> None:
    doc = {
        "title": "Kafka consumer lag",
        "source": "wiki/kafka-lag",
        "text": "## Lag\n\nWhen kafka consumer lag grows, scale the consumer group with "
        "`kubectl scale deployment/consumer --replicas=6` and check partition skew.",
        "metadata": {"team": "data", "tier": 1},
    }
    response = client.post(URL, json={"documents": [doc]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "documents": [{"id": "wiki-kafka-lag", "chunks": 1}],
        "collection": "vaia_kb__hash-v1-768",
        "embedder": "hash-v1-768",
    }
    answer = client.post("/v1/agent/infer", json={"query": "kafka consumer lag is growing"}).json()
    assert "kubectl scale deployment/consumer" in answer["answer"]
    [source] = [s for s in answer["sources"] if s["cited"]]
    assert source["document_id"] == "wiki-kafka-lag" and source["source"] == "wiki/kafka-lag"


def test_reingesting_replaces_the_document(client) -> None:
    long_text = "## Steps\n\n" + "\n\n".join(
        f"Step {i}: drain node pool {i} before upgrades." for i in range(60)
    )
    first = client.post(
        URL, json={"documents": [{"id": "upgrades", "title": "Upgrades", "text": long_text}]}
    ).json()
    assert first["documents"][0]["chunks"] > 1
    second = client.post(
        URL,
        json={
            "documents": [
                {"id": "upgrades", "title": "Upgrades", "text": "Upgrades are frozen in December."}
            ]
        },
    ).json()
    assert second["documents"] == [{"id": "upgrades", "chunks": 1}]
    store = client.app.state.components.store
    assert client.portal.call(store.document_chunk_ids, "upgrades") == ["upgrades::0000"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({}, 422),
        ({"documents": []}, 422),
        ({"documents": [{"title": "t"}]}, 422),
        ({"documents": [{"title": "", "text": "x"}]}, 422),
        ({"documents": [{"title": "t", "text": "   "}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "id": "bad id"}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "metadata": {"document_id": "x"}}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "metadata": {"k": {"nested": 1}}}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "metadata": {"k": [1]}}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "extra": 1}]}, 422),
        (
            {
                "documents": [
                    {"title": "t", "text": "x", "id": "a"},
                    {"title": "u", "text": "y", "id": "a"},
                ]
            },
            422,
        ),
        ({"documents": [{"title": "t", "text": "x" * 200_001}]}, 413),
        ({"documents": [{"title": f"t{i}", "text": "x"} for i in range(51)]}, 413),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_written(client, payload, status) -> None:
    store = client.app.state.components.store
    before = client.portal.call(store.count)
    response = client.post(URL, json=payload)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert client.portal.call(store.count) == before


def test_store_down_fails_loudly_with_503(tmp_path) -> None:
    settings = api_settings(
        tmp_path,
        chroma_host="127.0.0.1",
        chroma_port=9,
        chroma_timeout_seconds=1,
        seed_on_startup=False,
    )
    with running_app(settings) as c:
        response = c.post(
            URL, json={"documents": [{"id": "d1", "title": "t", "text": "important runbook"}]}
        )
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "store_unavailable" and body["written"] == []
        assert "ChromaDB at http://127.0.0.1:9" in body["detail"]
        assert response.headers["retry-after"] == "5"

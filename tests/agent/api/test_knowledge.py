"""POST /v1/knowledge/documents."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

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
    [chunk] = client.portal.call(store.document_chunk_ids, "upgrades")
    assert chunk.startswith("upgrades::") and chunk.endswith("::0000")  # <id>::<version>::<index>


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
        # Over the string limit, though it reads as a number (schemathesis found it taken as 0).
        ({"documents": [{"title": "t", "text": "x", "metadata": {"k": "0" * 1001}}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "metadata": {"k": "1e3" + "0" * 998}}]}, 422),
        ({"documents": [{"title": "t", "text": "x", "extra": 1}]}, 422),
        (
            {
                "documents": [
                    {"title": "t", "text": "x", "id": "a"},
                    {"title": "u", "text": "y", "id": "a"},
                ]
            },
            409,
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


def _version_text(letter: str, paragraphs: int) -> str:
    # Paragraphs of ~400 characters: the chunker packs two per 900-character chunk.
    return "\n\n".join(
        f"Version {letter} paragraph {i}: " + f"runbook step {letter}{i} drains pool {i}. " * 12
        for i in range(paragraphs)
    )


def test_concurrent_reingests_on_two_replicas_leave_one_complete_version(
    chroma_server, tmp_path
) -> None:
    """Five writers, spread over two app instances that share one Chroma server, re-ingest
    one document id with different texts at the same moment, round after round."""
    import chromadb

    from agent.knowledge.chunking import chunk_document

    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = [
        api_settings(
            tmp_path / name,
            **chroma_server.client_settings(
                chroma_collection_prefix=prefix, chroma_timeout_seconds=30, seed_on_startup=False
            ),
        )
        for name in ("one", "two")
    ]
    versions = {letter: _version_text(letter, 4 + 3 * n) for n, letter in enumerate("ABCDE")}
    expected = {
        letter: sorted(c.text for c in chunk_document("shared", "Shared", text))
        for letter, text in versions.items()
    }
    assert len({len(chunks) for chunks in expected.values()}) == 5  # every version differs
    observer = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)

    with running_app(settings[0]) as one, running_app(settings[1]) as two:

        def stored() -> list[str]:
            return list(collection.get(where={"document_id": "shared"})["documents"])

        def ingest(client, letter: str) -> int:
            doc = {"id": "shared", "title": "Shared", "text": versions[letter]}
            return client.post(URL, json={"documents": [doc]}).status_code

        assert ingest(one, "A") == 200
        collection = observer.get_collection(one.app.state.components.store.collection_name)
        missing: list[int] = []
        for round_ in range(4):
            stop = threading.Event()

            def read(stop: threading.Event = stop, round_: int = round_) -> None:
                while not stop.is_set():
                    if not stored():
                        missing.append(round_)

            reader = threading.Thread(target=read)
            reader.start()
            with ThreadPoolExecutor(5) as pool:
                statuses = list(
                    pool.map(
                        lambda pair: ingest(pair[0], pair[1]),
                        [((one, two)[n % 2], letter) for n, letter in enumerate("ABCDE")],
                    )
                )
            stop.set()
            reader.join()
            assert set(statuses) <= {200, 409}, statuses
            texts = sorted(stored())
            matches = [letter for letter, chunks in expected.items() if chunks == texts]
            assert matches, (
                f"round {round_}: the store holds a mix of versions: {len(texts)} chunks"
            )
        assert not missing, f"readers saw the document missing in rounds {missing}"


def test_reingesting_replaces_the_metadata_too(client) -> None:
    import chromadb

    c = client.app.state.components
    first = {"id": "meta", "title": "Meta", "text": "Version one of the document."}
    first["metadata"] = {"owner": "alice", "classification": "secret"}
    assert client.post(URL, json={"documents": [first]}).status_code == 200
    second = {"id": "meta", "title": "Meta", "text": "Version two of the document."}
    assert client.post(URL, json={"documents": [second]}).status_code == 200

    observer = chromadb.PersistentClient(
        path=str(c.settings.chroma_path),
        settings=chromadb.config.Settings(anonymized_telemetry=False),  # as the store's
    )
    stored = observer.get_collection(c.store.collection_name).get(
        where={"document_id": "meta"}, include=["metadatas", "documents"]
    )
    assert stored["documents"] == ["Version two of the document."]
    [metadata] = stored["metadatas"]
    assert "owner" not in metadata and "classification" not in metadata


@pytest.fixture(scope="module")
def on_server(chroma_process, tmp_path_factory):
    """An app on a real Chroma server (whose client refuses some input itself)."""
    if not chroma_process.answering():
        chroma_process.start(timeout=60)
    settings = api_settings(
        tmp_path_factory.mktemp("server"), **chroma_process.client_settings(seed_on_startup=False)
    )
    with running_app(settings) as c:
        assert c.post(
            URL, json={"documents": [{"id": "seed", "title": "t", "text": "x"}]}
        ).is_success
        yield c


def _raw(document: dict) -> bytes:
    # json.dumps escapes a lone surrogate as \ud800, as a client in any language can send it.
    return json.dumps({"documents": [{"title": "t", "text": "some text", **document}]}).encode()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"text": "\ud800"}, "text"),
        ({"text": "ok \udfff ok"}, "text"),
        ({"title": "a\ud800"}, "title"),
        ({"source": "\ud800"}, "source"),
        ({"metadata": {"#x": 1}}, "metadata"),
        ({"metadata": {"$and": 1}}, "metadata"),
        ({"metadata": {"chroma:document": "x"}}, "metadata"),
        ({"metadata": {"k\ud800": "x"}}, "metadata"),
        ({"metadata": {"k": "\ud800"}}, "metadata"),
        ({"metadata": {"k": 2**63}}, "metadata"),
        ({"metadata": {"k": 10**18 + 1}}, "metadata"),
        ({"metadata": {"k": -(2**63) - 1}}, "metadata"),
    ],
)
def test_input_chroma_cannot_store_is_a_422_naming_the_field(on_server, document, field) -> None:
    c = on_server
    store = c.app.state.components.store
    before = c.portal.call(store.count)
    response = c.post(URL, content=_raw(document), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert any(field in error["loc"] for error in body["errors"]), body["errors"]
    # Client input says nothing about Chroma's health, and nothing was written.
    ready = c.get("/ready").json()
    assert ready["checks"]["chromadb"]["status"] == "up" and ready["down"] == []
    assert 'vaia_dependency_up{dependency="chromadb"} 1.0' in c.get("/metrics").text
    assert c.portal.call(store.count) == before


def test_a_document_the_store_refuses_is_a_422_naming_it(client, monkeypatch) -> None:
    from agent.store.vector import StoreRejectedError

    store = client.app.state.components.store
    real = store.upsert_document

    async def refuse_second(document_id, chunks, metadata):
        if document_id == "second":
            raise StoreRejectedError("ChromaDB refused the input (upsert): invalid metadata")
        return await real(document_id, chunks, metadata)

    monkeypatch.setattr(store, "upsert_document", refuse_second)
    docs = [{"id": i, "title": i, "text": f"The {i} document."} for i in ("first", "second")]
    response = client.post(URL, json={"documents": docs})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["loc"] == ["body", "documents", 1]
    assert body["written"] == ["first"]
    assert client.get("/ready").json()["down"] == []


@pytest.mark.unit
def test_metadata_values_keep_their_json_types() -> None:
    """A string that reads as a number or a boolean stays a string; numbers stay numbers."""
    from agent.domain import DocumentIn

    metadata = {"a": "12", "b": "true", "c": 12, "d": 1.5, "e": True}
    assert DocumentIn(title="t", text="x", metadata=metadata).metadata == metadata
    for key, value in metadata.items():
        assert type(DocumentIn(title="t", text="x", metadata={key: value}).metadata[key]) is type(
            value
        )

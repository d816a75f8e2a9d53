"""The knowledge store on the embedded Chroma and on a real `chroma run` server."""

import re
import time
import uuid

import anyio
import pytest

from agent.embeddings.hashing import HashingEmbedder
from agent.knowledge.chunking import chunk_document
from agent.metrics import Metrics
from agent.store.vector import (
    KnowledgeStore,
    StoreRejectedError,
    StoreUnavailableError,
    collection_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

WORDS = [
    "falcon",
    "quartz",
    "meadow",
    "harbor",
    "lantern",
    "glacier",
    "orchid",
    "tundra",
    "canyon",
    "ember",
    "willow",
    "prism",
    "basalt",
    "comet",
    "delta",
    "fjord",
    "geyser",
    "hollow",
    "isle",
    "jasper",
    "kelp",
    "lagoon",
    "mesa",
    "nebula",
]
DOC = "## Undo\n\n" + " ".join(
    f"Rollback step {w}: run kubectl rollout undo for the {w} service and verify it." for w in WORDS
)


@pytest.fixture(params=["embedded", "server"])
def store(request, make_settings):
    # A fresh collection per test: the server is shared by the whole session.
    prefix = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "embedded":
        settings = make_settings(chroma_collection_prefix=prefix)
    else:
        server = request.getfixturevalue("chroma_server")
        settings = make_settings(
            chroma_host="127.0.0.1", chroma_port=server.port, chroma_collection_prefix=prefix
        )
    s = KnowledgeStore(settings, HashingEmbedder(256), Metrics())
    yield s
    s.close()


async def test_upsert_then_search_finds_the_document(store) -> None:
    chunks = chunk_document("runbook/rollbacks", "Rollbacks", DOC, size=300, overlap=50)
    assert await store.upsert_document("runbook/rollbacks", chunks, {"source": "s"}) == len(chunks)
    passages = await store.search("rollback the glacier service", 3)
    assert len(passages) == 3
    assert passages[0].document_id == "runbook/rollbacks"
    assert passages[0].title == "Rollbacks" and passages[0].section == "Undo"
    assert passages[0].score > passages[-1].score - 1e-9
    assert "glacier" in passages[0].text


class Recording:
    """A collection whose calls are recorded: the method and what it included."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self.calls: list[tuple[str, list[str]]] = []

    def __getattr__(self, name: str):
        method = getattr(self._collection, name)

        def call(*args, **kwargs):
            self.calls.append((name, kwargs.get("include")))
            return method(*args, **kwargs)

        return call


async def test_a_chunks_text_is_read_once_then_a_search_asks_only_for_ids(store) -> None:
    chunks = chunk_document("runbook/rollbacks", "Rollbacks", DOC, size=300, overlap=50)
    await store.upsert_document("runbook/rollbacks", chunks, {"source": "s"})
    first = await store.search("rollback the glacier service", 2)
    recording = Recording(store._connection.collection)
    store._connection = store._connection._replace(collection=recording)
    again = await store.search("rollback the glacier service", 2)
    assert again == first  # the same passages, texts and scores
    assert recording.calls == [("query", ["distances"])]  # no documents, no metadata, no get


async def test_reingesting_replaces_instead_of_duplicating(store) -> None:
    long = chunk_document("doc", "T", DOC, size=300, overlap=50)
    await store.upsert_document("doc", long, {})
    assert await store.count() == len(long)
    await store.upsert_document("doc", long, {})
    assert await store.count() == len(long)
    short = chunk_document("doc", "T", "A much shorter second version of the document.")
    await store.upsert_document("doc", short, {})
    [only] = await store.document_chunk_ids("doc")
    assert re.fullmatch(r"doc::\d+::0000", only)  # <document id>::<write version>::<index>
    assert await store.count() == 1
    [passage] = await store.search("shorter second version", 5)
    assert "second version" in passage.text


async def test_other_documents_are_untouched_by_a_replace(store) -> None:
    await store.upsert_document("a", chunk_document("a", "A", "Alpha text about deploys."), {})
    await store.upsert_document("b", chunk_document("b", "B", "Beta text about rollbacks."), {})
    await store.upsert_document("a", chunk_document("a", "A", "Alpha v2."), {})
    assert len(await store.document_chunk_ids("b")) == 1


async def test_min_score_filters_and_stopwords_find_nothing(store) -> None:
    await store.upsert_document("a", chunk_document("a", "A", "Alpha text about deploys."), {})
    assert await store.search("how do I", 3) == []
    assert await store.search("zebra giraffe", 3, min_score=0.5) == []


def test_collections_are_keyed_by_embedding_space() -> None:
    assert collection_name("vaia_kb", "hash-v1-768") != collection_name(
        "vaia_kb", "gemini-embedding-001-768"
    )
    assert (
        collection_name("vaia_kb", "gemini-embedding-001-768")
        == "vaia_kb__gemini-embedding-001-768"
    )


async def test_vectors_of_different_spaces_never_mix(make_settings) -> None:
    settings = make_settings()
    small = KnowledgeStore(settings, HashingEmbedder(128), Metrics())
    large = KnowledgeStore(settings, HashingEmbedder(256), Metrics())
    await small.upsert_document("a", chunk_document("a", "A", "Alpha text."), {})
    assert await large.count() == 0
    assert small.collection_name != large.collection_name


async def test_server_down_raises_store_unavailable_then_recovers(
    chroma_server, make_settings
) -> None:
    metrics = Metrics()
    settings = make_settings(**chroma_server.client_settings(chroma_timeout_seconds=3))
    store = KnowledgeStore(settings, HashingEmbedder(256), metrics)
    await store.upsert_document("a", chunk_document("a", "A", "Alpha text about deploys."), {})
    chroma_server.stop()
    try:
        with pytest.raises(StoreUnavailableError, match=r"ChromaDB at http://127\.0\.0\.1"):
            await store.search("alpha deploys", 2)
        with pytest.raises(StoreUnavailableError):
            await store.heartbeat()
        assert metrics.dependency_up.labels("chromadb")._value.get() == 0
    finally:
        chroma_server.start(timeout=60)
    # The data survived the restart (persistent path) and the client reconnects by itself.
    [passage] = await store.search("alpha deploys", 1)
    assert passage.document_id == "a"
    assert metrics.dependency_up.labels("chromadb")._value.get() == 1


async def test_embedded_store_persists_across_clients(make_settings) -> None:
    settings = make_settings()
    first = KnowledgeStore(settings, HashingEmbedder(256), Metrics())
    await first.upsert_document("a", chunk_document("a", "A", "Alpha text about deploys."), {})
    first.close()
    second = KnowledgeStore(settings, HashingEmbedder(256), Metrics())
    assert await second.count() == 1


async def test_connecting_to_a_paused_server_gives_up_by_itself(
    chroma_server, make_settings
) -> None:
    """The pool thread that connects is bounded too, not only the caller that waits for it:
    otherwise threads stuck in chromadb's constructor pile up while Chroma hangs."""
    settings = make_settings(**chroma_server.client_settings(chroma_timeout_seconds=1))
    store = KnowledgeStore(settings, HashingEmbedder(256), Metrics())
    try:
        with chroma_server.paused():
            started = time.perf_counter()
            with anyio.fail_after(20), pytest.raises(Exception, match=r"(?i)timed out|connect"):
                await anyio.to_thread.run_sync(store._connect, abandon_on_cancel=True)
            elapsed = time.perf_counter() - started
        assert elapsed < 10, f"connecting gave up after {elapsed:.1f} s with a 1 s timeout"
        assert await store.count() == 0  # resumed: the same store connects
    finally:
        store.close()


async def test_chunks_written_before_versions_existed_are_replaced(store) -> None:
    legacy = chunk_document("doc", "T", "The old, unversioned text of the document.")

    def write_legacy(connection) -> None:
        [chunk] = legacy
        connection.collection.upsert(
            ids=[chunk.id],
            embeddings=[[1.0] + [0.0] * 255],
            documents=[chunk.text],
            metadatas=[{"document_id": "doc", "chunk_index": 0, "title": "T", "section": ""}],
        )

    await store._run("upsert", write_legacy)
    assert await store.document_chunk_ids("doc") == ["doc::0000"]
    await store.upsert_document("doc", chunk_document("doc", "T", "The new text."), {})
    [only] = await store.document_chunk_ids("doc")
    assert only != "doc::0000" and await store.count() == 1


@pytest.mark.parametrize(
    "metadata", [{"#x": 1}, {"$and": 1}, {"k": "\ud800"}, {"chroma:document": "x"}]
)
async def test_input_chroma_refuses_is_a_rejection_not_an_outage(store, metadata) -> None:
    """Behind the API's validation, a safety net: what Chroma refuses says nothing about its
    health, so the dependency stays up and the connection is kept."""
    await store.upsert_document("a", chunk_document("a", "A", "Alpha text."), {})
    connection = store._connection
    with pytest.raises(StoreRejectedError):
        await store.upsert_document("b", chunk_document("b", "B", "Beta text."), metadata)
    assert store._metrics.dependency_up.labels("chromadb")._value.get() == 1
    assert store._connection is connection
    assert await store.document_chunk_ids("b") == []


async def test_a_query_that_just_succeeded_stands_for_the_heartbeat(make_settings) -> None:
    """Under load a heartbeat waited its turn behind the queries: /ready took 0.1-0.6 s."""
    store = KnowledgeStore(make_settings(), HashingEmbedder(256), Metrics())
    await store.upsert_document("a", chunk_document("a", "A", "Alpha text about deploys."), {})
    beats: list[str] = []
    run = store._run

    async def counted(what, func, *args):
        beats.append(what)
        return await run(what, func, *args)

    store._run = counted  # type: ignore[method-assign]
    await store.search("alpha deploys", 1)
    await store.heartbeat()
    assert beats == ["query"]  # no heartbeat sent: the query showed the store is up
    await anyio.sleep(1.1)  # RECENT_SUCCESS_SECONDS later, a heartbeat is sent again
    await store.heartbeat()
    assert beats == ["query", "heartbeat"]
    store.close()

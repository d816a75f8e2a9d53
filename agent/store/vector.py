"""The knowledge store: ChromaDB through its official client.

`HttpClient` when CHROMA_HOST is set, an embedded `PersistentClient` otherwise. The client is
synchronous, so every call runs in a worker thread under a deadline: a hung Chroma server costs
a request at most CHROMA_TIMEOUT_SECONDS, never a stuck worker pool. A failed call drops the
client, so the next call reconnects (Chroma may have restarted).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from agent.config import Settings
from agent.domain import Passage
from agent.embeddings.base import Embedder
from agent.knowledge.chunking import Chunk
from agent.metrics import Metrics

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)
T = TypeVar("T")

_NAME_DROP = re.compile(r"[^a-zA-Z0-9_-]+")
# Chroma's upsert takes bounded batches; stay well below its maximum.
UPSERT_BATCH = 256


class StoreUnavailableError(RuntimeError):
    """The knowledge store could not be reached or refused the operation."""


def collection_name(prefix: str, space: str) -> str:
    """One collection per embedding space: vectors of different models never mix."""
    name = _NAME_DROP.sub("-", f"{prefix}__{space}").strip("-_")
    return name[:63]


class KnowledgeStore:
    def __init__(self, settings: Settings, embedder: Embedder, metrics: Metrics) -> None:
        self._settings = settings
        self.embedder = embedder
        self._metrics = metrics
        self.collection_name = collection_name(settings.chroma_collection_prefix, embedder.space)
        self._lock = threading.Lock()
        self._client: ClientAPI | None = None
        self._collection: Collection | None = None

    @property
    def mode(self) -> str:
        return "server" if self._settings.chroma_host else "embedded"

    @property
    def location(self) -> str:
        s = self._settings
        return f"http://{s.chroma_host}:{s.chroma_port}" if s.chroma_host else str(s.chroma_path)

    # --- connection -------------------------------------------------------------------------

    def _connect(self) -> Collection:
        with self._lock:
            if self._collection is not None:
                return self._collection
            import chromadb  # deferred: importing chromadb costs ~0.5 s, not needed by /health
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            s = self._settings
            if s.chroma_host:
                self._client = chromadb.HttpClient(
                    host=s.chroma_host, port=s.chroma_port, settings=chroma_settings
                )
            else:
                if getattr(chromadb, "is_client", False):
                    raise StoreUnavailableError(
                        "the embedded store needs the full chromadb package, but only the thin "
                        "chromadb-client is installed: set CHROMA_HOST to use a Chroma server, or "
                        'install the embedded extra: pip install "vaia-agent[embedded]"'
                    )
                s.chroma_path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(
                    path=str(s.chroma_path), settings=chroma_settings
                )
            self._collection = self._client.get_or_create_collection(
                name=self.collection_name,
                metadata={"hnsw:space": "cosine", "embedder": self.embedder.space},
                embedding_function=None,
            )
            return self._collection

    def _reset(self) -> None:
        with self._lock:
            self._client = None
            self._collection = None

    async def _run(self, what: str, func: Callable[[Collection], T]) -> T:
        def call() -> T:
            return func(self._connect())

        try:
            with anyio.fail_after(self._settings.chroma_timeout_seconds):
                result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except StoreUnavailableError:
            self._metrics.dependency_up.labels("chromadb").set(0)
            raise
        except Exception as exc:
            self._metrics.dependency_up.labels("chromadb").set(0)
            self._reset()
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("chromadb call failed", extra={"operation": what, "error": reason})
            raise StoreUnavailableError(
                f"ChromaDB at {self.location} failed ({what}): {reason}"
            ) from exc
        self._metrics.dependency_up.labels("chromadb").set(1)
        return result

    # --- operations -------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        def beat(_collection: Collection) -> None:
            if self._client is not None:
                self._client.heartbeat()

        await self._run("heartbeat", beat)

    async def count(self) -> int:
        return await self._run("count", lambda collection: collection.count())

    async def search(self, text: str, top_k: int, min_score: float = 0.0) -> list[Passage]:
        [vector] = await self.embedder.embed([text], "query")
        if not any(vector):
            return []  # nothing to match on (for example a question of stop words only)

        embeddings: list[Sequence[float]] = [vector]

        def query(collection: Collection) -> Any:
            return collection.query(
                query_embeddings=embeddings,
                n_results=top_k,
                include=["documents", "metadatas", "distances"],
            )

        result = await self._run("query", query)
        passages = []
        ids = result["ids"][0]
        documents = (result.get("documents") or [[]])[0]
        metadatas = (result.get("metadatas") or [[]])[0]
        distances = (result.get("distances") or [[]])[0]
        for chunk_id, text_, meta, distance in zip(
            ids, documents, metadatas, distances, strict=True
        ):
            score = 1.0 - float(distance)
            if score < min_score:
                continue
            meta = meta or {}
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    document_id=str(meta.get("document_id", "")),
                    title=str(meta.get("title", "")),
                    source=str(meta.get("source", "")),
                    section=str(meta.get("section", "")),
                    text=text_ or "",
                    score=score,
                )
            )
        return passages

    async def upsert_document(
        self, document_id: str, chunks: list[Chunk], metadata: dict[str, Any]
    ) -> int:
        """Write a document's chunks, then delete chunks left over from a longer old version.

        Upsert first, delete after: at no moment is the document missing from the store."""
        vectors: list[Sequence[float]] = list(
            await self.embedder.embed([c.embedding_text() for c in chunks], "document")
        )
        # Chunks of an older, longer version of this document.
        stale: Any = {
            "$and": [{"document_id": document_id}, {"chunk_index": {"$gte": len(chunks)}}]
        }

        def write(collection: Collection) -> None:
            for start in range(0, len(chunks), UPSERT_BATCH):
                batch = chunks[start : start + UPSERT_BATCH]
                collection.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vectors[start : start + UPSERT_BATCH],
                    documents=[c.text for c in batch],
                    metadatas=[
                        {
                            **metadata,
                            "document_id": document_id,
                            "chunk_index": c.index,
                            "title": c.title,
                            "section": c.section,
                        }
                        for c in batch
                    ],
                )
            collection.delete(where=stale)

        await self._run("upsert", write)
        self._metrics.ingested_chunks.inc(len(chunks))
        return len(chunks)

    async def document_chunk_ids(self, document_id: str) -> list[str]:
        def ids(collection: Collection) -> list[str]:
            return list(collection.get(where={"document_id": document_id}, include=[])["ids"])

        return await self._run("get", ids)

    def close(self) -> None:
        self._reset()

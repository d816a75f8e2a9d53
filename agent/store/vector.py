"""The knowledge store: ChromaDB through its official client.

An HTTP client when CHROMA_HOST is set, an embedded `PersistentClient` otherwise. The client is
synchronous, so every call runs in a small thread pool of the store's own, under a deadline:
a hung Chroma server costs a request at most CHROMA_TIMEOUT_SECONDS. The HTTP client's own
requests, connecting included, time out too (`chroma_http.BoundedHttpClient`), so an abandoned
call frees its thread. The event loop never waits on a thread: it never takes the connect lock,
and dropping a failed connection is an attribute swap. A failed call drops the connection, so
the next call reconnects (Chroma may have restarted).

A search asks Chroma for the nearest chunks' ids and distances only: their text and metadata
come from what the store already read of them. A chunk's id names one version of it
(`<document>::<version>::<index>`: a re-ingest writes new ids), so what was read once never
changes; an id not yet known is read in the same call. Reading documents and metadata with every
query cost a third of the query (docs/benchmarks.md, issue #25).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio

from agent.config import Settings
from agent.domain import Passage
from agent.embeddings.base import Embedder
from agent.knowledge.chunking import Chunk
from agent.metrics import Metrics
from agent.store.batch import Batcher, Nearest

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)
T = TypeVar("T")

_NAME_DROP = re.compile(r"[^a-zA-Z0-9_-]+")
# Chroma's upsert takes bounded batches; stay well below its maximum.
UPSERT_BATCH = 256
# Threads for Chroma calls: enough for concurrent requests, few enough that calls abandoned on
# a hung server (each ends by its HTTP timeout) cannot pile up threads without bound. A query
# holds a thread about a millisecond, so 4 carry thousands a second; with 8, the threads'
# contention for the GIL with the event loop cost 0.3-0.5 ms of CPU per request at 100 clients
# (docs/benchmarks.md).
CHROMA_THREADS = 4
# A call that succeeded this recently shows the store is up as well as a heartbeat would. Under
# load a heartbeat waits its turn behind the queries (in the pool and in Chroma itself): /ready
# took 0.1-0.6 s while 600 clients asked questions (docs/benchmarks.md, issue #19).
RECENT_SUCCESS_SECONDS = 1.0
# Metadata of every chunk: which write it belongs to, and how many chunks that write has.
VERSION_KEY = "version"
CHUNK_COUNT_KEY = "chunk_count"
# Chunks whose text and metadata the store keeps (a runbook chunk is about 1 KB: a few MB).
KNOWN_CHUNKS = 5000


class StoreUnavailableError(RuntimeError):
    """The knowledge store could not be reached or refused the operation."""


class StoreRejectedError(RuntimeError):
    """Chroma refused the input (a client error): the store itself is fine."""


class StoreMisconfiguredError(StoreUnavailableError):
    """The store cannot work with this configuration: retrying does not help, an operator does."""


class _Connection(NamedTuple):
    client: ClientAPI
    collection: Collection


class _Chunk(NamedTuple):
    """What a search returns of a chunk besides its score; never changes for its id."""

    document_id: str
    title: str
    source: str
    section: str
    text: str


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
        # Replaced whole (an atomic swap), so the event loop can drop it without a lock.
        self._connection: _Connection | None = None
        # Serialises connecting; taken by pool threads only, never on the event loop.
        self._connect_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(CHROMA_THREADS, thread_name_prefix="chroma")
        self._last_success = -RECENT_SUCCESS_SECONDS  # monotonic; reset by every failure
        # Chunks read so far, by id (written in the pool's threads, read on the loop: a dict's
        # get and set are atomic); the oldest go first past KNOWN_CHUNKS.
        self._chunks: dict[str, _Chunk] = {}
        # Searches that arrive while one is answered go to Chroma together (store/batch.py).
        self._searches = Batcher(self._query, settings.chroma_timeout_seconds)

    @property
    def mode(self) -> str:
        return "server" if self._settings.chroma_host else "embedded"

    @property
    def location(self) -> str:
        s = self._settings
        return f"http://{s.chroma_host}:{s.chroma_port}" if s.chroma_host else str(s.chroma_path)

    # --- connection -------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        """The live connection, or a new one (in a pool thread, bounded by the HTTP timeout)."""
        connection = self._connection
        if connection is not None:
            return connection
        if not self._connect_lock.acquire(timeout=self._settings.chroma_timeout_seconds):
            raise TimeoutError("another connection attempt to ChromaDB is still under way")
        try:
            if self._connection is None:
                self._connection = self._open()
            return self._connection
        finally:
            self._connect_lock.release()

    def _open(self) -> _Connection:
        import chromadb  # deferred: importing chromadb costs ~0.5 s, not needed by /health
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        s = self._settings
        client: ClientAPI
        if s.chroma_host:
            from agent.store.chroma_http import BoundedHttpClient

            if s.chroma_auth_token is not None:  # chromadb's own client-side token auth
                chroma_settings.chroma_client_auth_provider = (
                    "chromadb.auth.token_authn.TokenAuthClientProvider"
                )
                chroma_settings.chroma_client_auth_credentials = (
                    s.chroma_auth_token.get_secret_value()
                )

            client = BoundedHttpClient(
                s.chroma_host, s.chroma_port, s.chroma_timeout_seconds, chroma_settings
            )
        else:
            if getattr(chromadb, "is_client", False):
                raise StoreMisconfiguredError(
                    "the embedded store needs the full chromadb package, but only the thin "
                    "chromadb-client is installed: set CHROMA_HOST to use a Chroma server, or "
                    'install the embedded extra: pip install "vaia-agent[embedded]"'
                )
            s.chroma_path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(s.chroma_path), settings=chroma_settings)
        try:
            collection = client.get_or_create_collection(
                name=self.collection_name,
                metadata={"hnsw:space": "cosine", "embedder": self.embedder.space},
                embedding_function=None,
            )
        except BaseException:
            _close_quietly(client)
            raise
        return _Connection(client, collection)

    def _drop(self, connection: _Connection | None) -> None:
        """Forget a failed connection (unless another call already replaced it); its client is
        closed in the pool, since closing may wait on the very requests that hang."""
        if connection is not None and self._connection is connection:
            self._connection = None
            self._pool.submit(_close_quietly, connection.client)

    async def _run(self, what: str, func: Callable[[_Connection], T]) -> T:
        used: list[_Connection] = []

        def call() -> T:
            connection = self._connect()
            used.append(connection)
            try:
                return func(connection)
            except Exception as exc:
                if _is_rejection(exc):
                    raise StoreRejectedError(f"ChromaDB refused the input ({what}): {exc}") from exc
                raise

        try:
            with anyio.fail_after(self._settings.chroma_timeout_seconds):
                # Cancelling this future on timeout also drops the call if it has not started.
                result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except StoreRejectedError:
            raise  # the store answered: it is up, and the connection is fine
        except StoreUnavailableError:
            self._last_success = -RECENT_SUCCESS_SECONDS
            self._metrics.dependency_up.labels("chromadb").set(0)
            raise
        except Exception as exc:
            self._last_success = -RECENT_SUCCESS_SECONDS
            self._metrics.dependency_up.labels("chromadb").set(0)
            self._drop(used[0] if used else None)
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("chromadb call failed", extra={"operation": what, "error": reason})
            raise StoreUnavailableError(
                f"ChromaDB at {self.location} failed ({what}): {reason}"
            ) from exc
        self._last_success = time.monotonic()
        self._metrics.dependency_up.labels("chromadb").set(1)
        return result

    # --- operations -------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        if time.monotonic() - self._last_success < RECENT_SUCCESS_SECONDS:
            return  # a query just answered

        def beat(connection: _Connection) -> None:
            connection.client.heartbeat()

        await self._run("heartbeat", beat)

    async def count(self) -> int:
        return await self._run("count", lambda c: c.collection.count())

    async def search(self, text: str, top_k: int, min_score: float = 0.0) -> list[Passage]:
        [vector] = await self.embedder.embed([text], "query")
        if not any(vector):
            return []  # nothing to match on (for example a question of stop words only)
        try:
            nearest = await self._searches.search(vector, top_k)
        except TimeoutError as exc:  # waited past the deadline for a call under way
            self._metrics.dependency_up.labels("chromadb").set(0)
            raise StoreUnavailableError(
                f"ChromaDB at {self.location} failed (query): timed out"
            ) from exc
        passages = []
        for chunk_id, score in nearest:
            chunk = self._chunks.get(chunk_id)
            if score >= min_score and chunk is not None:  # else deleted since the query
                passages.append(Passage(chunk_id, *chunk, score=score))
        return passages

    async def _query(self, vectors: list[Sequence[float]], top_k: int) -> list[Nearest]:
        """One query call for the vectors of searches that arrived together (in a pool
        thread): the nearest chunks' ids and scores, reading the chunks not read before."""

        def query(connection: _Connection) -> list[Nearest]:
            found = connection.collection.query(
                query_embeddings=vectors, n_results=top_k, include=["distances"]
            )
            distances = found.get("distances") or []
            nearest = [
                [(chunk_id, 1.0 - float(d)) for chunk_id, d in zip(ids, ds, strict=False)]
                for ids, ds in zip(found["ids"], distances, strict=False)  # Chroma aligns them
            ]
            unread = {i for found_ in nearest for i, _ in found_ if i not in self._chunks}
            self._read_chunks(connection, sorted(unread))
            return nearest

        return await self._run("query", query)

    def _read_chunks(self, connection: _Connection, ids: list[str]) -> None:
        """Text and metadata of chunks not read before (in a pool thread)."""
        if not ids:
            return
        found = connection.collection.get(ids=ids, include=["documents", "metadatas"])
        documents = found.get("documents") or []
        metadatas = found.get("metadatas") or []
        for chunk_id, text, meta in zip(found["ids"], documents, metadatas, strict=False):
            meta = meta or {}
            self._chunks[chunk_id] = _Chunk(
                str(meta.get("document_id", "")),
                str(meta.get("title", "")),
                str(meta.get("source", "")),
                str(meta.get("section", "")),
                text or "",
            )
        while len(self._chunks) > KNOWN_CHUNKS:
            self._chunks.pop(next(iter(self._chunks)), None)

    async def upsert_document(
        self, document_id: str, chunks: list[Chunk], metadata: dict[str, Any]
    ) -> int:
        """Replace a document: write the new version whole, then delete older versions.

        Each write is a version of its own (its chunk ids and metadata carry it), so
        concurrent writers, in this process or in other replicas sharing the Chroma server,
        never overwrite each other's chunks. After writing, a writer deletes every chunk older
        than the newest *complete* version it sees (its own, or a newer one that finished
        first). So the newest complete version always survives, the others are deleted by
        whichever writer finishes last, and at no moment is the document missing."""
        vectors: list[Sequence[float]] = list(
            await self.embedder.embed([c.embedding_text() for c in chunks], "document")
        )
        version = new_version()
        tags = {VERSION_KEY: version, CHUNK_COUNT_KEY: len(chunks)}
        try:
            for start in range(0, len(chunks), UPSERT_BATCH):
                batch = chunks[start : start + UPSERT_BATCH]
                records: Records = (
                    [chunk_id(document_id, version, c.index) for c in batch],
                    vectors[start : start + UPSERT_BATCH],
                    [c.text for c in batch],
                    [
                        {
                            **metadata,
                            **tags,
                            "document_id": document_id,
                            "chunk_index": c.index,
                            "title": c.title,
                            "section": c.section,
                        }
                        for c in batch
                    ],
                )
                # One call per batch: each is bounded by the timeout, whatever the document's size.
                await self._run("upsert", partial(_upsert, records=records))
        except Exception:
            await self._forget_version(document_id, version)
            raise
        await self._run("upsert", lambda c: _delete_older_versions(c.collection, document_id))
        self._metrics.ingested_chunks.inc(len(chunks))
        return len(chunks)

    async def _forget_version(self, document_id: str, version: int) -> None:
        """Best effort: a failed write deletes what it wrote, so no partial version lingers."""
        where: Any = {"$and": [{"document_id": document_id}, {VERSION_KEY: version}]}
        # If that fails too, the next write of this document deletes it (older, incomplete).
        with contextlib.suppress(StoreUnavailableError):
            await self._run("cleanup", lambda c: c.collection.delete(where=where))

    async def document_chunk_ids(self, document_id: str) -> list[str]:
        def ids(connection: _Connection) -> list[str]:
            found = connection.collection.get(where={"document_id": document_id}, include=[])
            return list(found["ids"])

        return await self._run("get", ids)

    def close(self) -> None:
        self._searches.close()
        self._drop(self._connection)
        self._pool.shutdown(wait=False, cancel_futures=True)


def new_version() -> int:
    """A write's version: later writes get larger numbers (microseconds since the epoch), and
    the low digits are random so that two replicas writing in the same microsecond differ.
    Fits Chroma's 64-bit integer metadata."""
    return time.time_ns() // 1000 * 1000 + secrets.randbelow(1000)


def chunk_id(document_id: str, version: int, index: int) -> str:
    return f"{document_id}::{version}::{index:04d}"


Records = tuple[list[str], list[Sequence[float]], list[str], list[dict[str, Any]]]


def _upsert(connection: _Connection, records: Records) -> None:
    ids, embeddings, documents, metadatas = records
    connection.collection.upsert(
        ids=ids,
        embeddings=embeddings,
        documents=documents,
        metadatas=metadatas,  # type: ignore[arg-type]
    )


def _delete_older_versions(collection: Collection, document_id: str) -> None:
    found = collection.get(where={"document_id": document_id}, include=["metadatas"])
    ids_by_version: dict[int, list[str]] = {}
    expected: dict[int, int] = {}
    for found_id, meta in zip(found["ids"], found["metadatas"] or [], strict=True):
        version = (meta or {}).get(VERSION_KEY)
        # Chunks written before versions existed count as the oldest, incomplete version.
        key = version if isinstance(version, int) and not isinstance(version, bool) else -1
        ids_by_version.setdefault(key, []).append(found_id)
        count = (meta or {}).get(CHUNK_COUNT_KEY)
        expected[key] = count if isinstance(count, int) else -1
    complete = [v for v, ids in ids_by_version.items() if v >= 0 and len(ids) == expected[v]]
    if not complete:
        return  # a newer writer is still writing: it deletes the older versions when done
    newest = max(complete)
    stale = [i for v, ids in ids_by_version.items() if v < newest for i in ids]
    if stale:
        collection.delete(ids=stale)


def _is_rejection(exc: Exception) -> bool:
    """Whether an operation failed on its input rather than on the store. Only called for
    errors of an operation on a live connection: chromadb's constructor raises ValueError for
    'cannot connect', which is an outage."""
    from chromadb.errors import InvalidArgumentError

    # ValueError/TypeError: chromadb's and orjson's own checks (a lone surrogate, an integer
    # beyond 64 bits, a reserved key); InvalidArgumentError: the server's validation (400).
    return isinstance(exc, ValueError | TypeError | InvalidArgumentError)


def _close_quietly(client: ClientAPI) -> None:
    try:
        close = getattr(client, "close", None)  # clients of chromadb >= 1.1 have it
        if callable(close):
            close()
    except Exception as exc:  # a client of a dead server may fail to close; it is dropped anyway
        log.debug("closing a chromadb client failed", extra={"error": repr(exc)})

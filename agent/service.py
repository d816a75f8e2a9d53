"""The agent: retrieve, prompt, call the LLM (and its tools), cite, cache, remember.

Every dependency failure has a defined degraded answer instead of an error:
- Redis down: the state layer falls back in-process; answers are simply not cached.
- ChromaDB (or the embedder) down: the answer says it has no sources; `degraded` says why.
- LLM unavailable after retries: an extractive answer from the retrieved passages, flagged.
- Knowledge base still being seeded at first start: answers are flagged, so never cached.
A question no passage answers well enough (below the relevance floor) is not a failure: the
answer says the runbooks do not cover it, cites nothing and says so in `covered`.
Ingestion is the exception: it fails loudly, because silently dropping documents loses data,
and it is refused when the shared cache cannot be invalidated (stale answers would outlive it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import anyio

from agent.config import Settings
from agent.domain import Answer, DocumentIn, Passage, Source, Turn
from agent.embeddings.base import EmbeddingError
from agent.embeddings.floors import relevance_floor
from agent.knowledge.chunking import chunk_document
from agent.llm.base import (
    Completion,
    LLMError,
    LLMProvider,
    LLMRateLimitError,
    LLMTimeoutError,
    LLMUnavailableError,
    StreamingProvider,
)
from agent.llm.offline import NO_SOURCES_ANSWER, NOT_COVERED_ANSWER, OfflineProvider
from agent.metrics import Metrics
from agent.prompts import Prompt, build_prompt, clean
from agent.store.state import CacheUnavailableError, State
from agent.store.vector import KnowledgeStore, StoreRejectedError, StoreUnavailableError
from agent.streaming import AnswerStream
from agent.tools import ToolContext, ToolRegistry

log = logging.getLogger(__name__)

RETRIEVAL_UNAVAILABLE = "retrieval_unavailable"
LLM_UNAVAILABLE = "llm_unavailable"
KNOWLEDGE_LOADING = "knowledge_base_loading"
NO_KNOWLEDGE_NOTICE = "The knowledge base is unavailable right now, so this answer has no sources."
LOADING_NOTICE = "The knowledge base is still loading; ask again in a moment."
# LLM failures that a fallback answer can stand in for; auth and bad requests are not.
_FALLBACK_ERRORS = (LLMUnavailableError, LLMRateLimitError, LLMTimeoutError)


class InjectedFaultError(RuntimeError):
    """Raised by the test-only FAULT_ERROR_RATE setting."""


class DocumentRejectedError(ValueError):
    """The store refused a document's content: a client error (422), nothing is down."""

    def __init__(self, index: int, message: str, written: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.index = index
        self.written = [w["id"] for w in written]


class IngestError(RuntimeError):
    """`kind`: store_unavailable (Chroma or the embedder) or cache_unavailable (Redis)."""

    def __init__(self, message: str, written: list[str], kind: str = "store_unavailable") -> None:
        super().__init__(message)
        self.written = written
        self.kind = kind


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# What a cached entry holds changed (CachedAnswer, then `covered`): the keys changed with it, so
# that during a rolling update, replicas of either version never read the other's entries in the
# shared Redis.
CACHE_FORMAT = 3


@functools.lru_cache(maxsize=4096)
def _key_without_history(provider: str, model: str, space: str, query: str, top_k: int) -> str:
    # The same questions come back (that is what the cache is for): their key is computed once.
    parts = {"provider": provider, "model": model, "space": space, "top_k": top_k}
    return cache_key({**parts, "query": normalize_query(query), "format": CACHE_FORMAT})


def normalize_query(query: str) -> str:
    return " ".join(clean(query).casefold().split())


class AgentService:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        store: KnowledgeStore,
        state: State,
        llm: LLMProvider,
        tools: ToolRegistry,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.state = state
        self.llm = llm
        self.tools = tools
        self._fallback = OfflineProvider()
        # Passages below it do not answer the question; None: every passage counts.
        self.relevance_floor = relevance_floor(store.embedder.space, settings.relevance_floor)
        # True until the first-start seed has finished: answers may lack the runbooks.
        self.knowledge_loading = False
        # labels() costs a lock and a validation per call: the three series, looked up once.
        self._cache_series = {
            result: metrics.cache_requests.labels(result) for result in ("hit", "miss", "error")
        }

    # --- retrieval ------------------------------------------------------------------------

    async def retrieve(self, query: str, top_k: int) -> list[Passage]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            found = await self.store.search(query, top_k, self.settings.retrieval_min_score)
            floor = self.relevance_floor
            return found if floor is None else [p for p in found if p.score >= floor]
        except (StoreUnavailableError, EmbeddingError):
            outcome = "error"
            raise
        finally:
            self.metrics.retrieval_latency.labels(outcome).observe(time.perf_counter() - started)

    # --- inference ------------------------------------------------------------------------

    async def infer(self, query: str, session_id: str | None, top_k: int | None) -> Answer:
        answer = await self.answer(query, session_id, top_k)
        return answer if isinstance(answer, Answer) else answer.model()

    async def answer(
        self,
        query: str,
        session_id: str | None,
        top_k: int | None,
        stream: AnswerStream | None = None,
    ) -> Answer | CachedAnswer:
        """The answer, or a cache hit as it was stored: its JSON, never parsed on the way out
        (the API sends it as it is; `infer` makes an Answer of it). With a `stream`, the
        answer's text is also written to it as it comes (agent/streaming.py)."""
        await self._inject_faults()
        k = top_k or self.settings.default_top_k
        history = await self.state.history(session_id) if session_id else []
        key = self._cache_key(query, k, history)
        lookup = await self.state.get_cached(key)
        self._cache_series[lookup.result].inc()
        if lookup.value is not None:
            hit = _result_from_cache(lookup.value)
            if stream is not None:
                stream.whole(hit.text(), "cache")
            if session_id:
                await self._remember(session_id, query, hit.text())
            return hit

        degraded: list[str] = [KNOWLEDGE_LOADING] if self.knowledge_loading else []
        try:
            passages = await self.retrieve(query, k)
        except (StoreUnavailableError, EmbeddingError) as exc:
            log.warning("answering without retrieval", extra={"reason": str(exc)})
            degraded.append(RETRIEVAL_UNAVAILABLE)
            passages = []

        if not passages and not degraded and self.relevance_floor is not None:
            # Nothing reaches the floor: whatever a model said would not come from the runbooks.
            response = self._not_covered()
            if lookup.generation is not None:
                await self.state.set_cached(key, _result_to_cache(response), lookup.generation)
            await self._remember(session_id, query, response.answer)
            return response

        prompt = build_prompt(query, passages, history if self.llm.uses_history else [])
        ctx = ToolContext(search=self._tool_search, found=list(passages))
        if stream is not None and RETRIEVAL_UNAVAILABLE in degraded:
            stream.lead_with(f"{NO_KNOWLEDGE_NOTICE}\n\n")  # as the answer will start
        completion, provider = await self._complete(prompt, ctx, degraded, stream)

        answer = completion.text
        if KNOWLEDGE_LOADING in degraded and answer == NO_SOURCES_ANSWER:
            answer = LOADING_NOTICE
        if RETRIEVAL_UNAVAILABLE in degraded:
            answer = (
                NO_KNOWLEDGE_NOTICE
                if answer == NO_SOURCES_ANSWER
                else f"{NO_KNOWLEDGE_NOTICE}\n\n{answer}"
            )
        for reason in degraded:
            self.metrics.degraded_answers.labels(reason).inc()
        if stream is not None and not stream.began:  # an answer that came whole
            stream.whole(answer, provider.name)

        cited = set(completion.cited)
        response = Answer(
            answer=answer,
            sources=[_source(n, p, n in cited) for n, p in enumerate(ctx.found, start=1)],
            tool_calls=completion.tool_calls,
            provider=provider.name,
            model=completion.model,
            cached=False,
            covered=bool(ctx.found),
            degraded=degraded,
        )
        if not degraded and lookup.generation is not None:
            await self.state.set_cached(key, _result_to_cache(response), lookup.generation)
        await self._remember(session_id, query, answer)
        return response

    def _not_covered(self) -> Answer:
        self.metrics.not_covered_answers.inc()
        return Answer(
            answer=NOT_COVERED_ANSWER,
            sources=[],
            tool_calls=[],
            provider=self.llm.name,
            model=self.llm.model,
            cached=False,
            covered=False,
            degraded=[],
        )

    async def _complete(
        self,
        prompt: Prompt,
        ctx: ToolContext,
        degraded: list[str],
        stream: AnswerStream | None = None,
    ) -> tuple[Completion, LLMProvider]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            if stream is not None and isinstance(self.llm, StreamingProvider):
                on_text = functools.partial(stream.delta, provider=self.llm.name)
                completion = await self.llm.complete_streaming(prompt, self.tools, ctx, on_text)
                return completion, self.llm
            return await self.llm.complete(prompt, self.tools, ctx), self.llm
        except _FALLBACK_ERRORS as exc:
            outcome = exc.kind
            # Once the client has part of Gemini's answer, another answer cannot follow it.
            if not self.settings.llm_fallback_offline or (stream is not None and stream.began):
                raise
            log.warning("LLM unavailable, answering extractively", extra={"reason": str(exc)})
            degraded.append(LLM_UNAVAILABLE)
            return await self._fallback.complete(prompt, self.tools, ctx), self._fallback
        except LLMError as exc:
            outcome = exc.kind
            raise
        finally:
            if self.llm.name == "offline":  # gemini records its own per-call latency
                self.metrics.llm_latency.labels("offline", outcome).observe(
                    time.perf_counter() - started
                )

    async def _tool_search(self, query: str, top_k: int) -> list[Passage]:
        return await self.retrieve(query, top_k)

    def _cache_key(self, query: str, top_k: int, history: list[Turn]) -> str:
        if not (self.llm.uses_history and history):
            space = self.store.embedder.space
            return _key_without_history(self.llm.name, self.llm.model, space, query, top_k)
        parts: dict[str, Any] = {
            "provider": self.llm.name,
            "model": self.llm.model,
            "space": self.store.embedder.space,
            "query": normalize_query(query),
            "top_k": top_k,
            "format": CACHE_FORMAT,
        }
        if self.llm.uses_history:
            parts["history"] = [[t.role, t.text] for t in history]
        return cache_key(parts)

    async def _remember(self, session_id: str | None, query: str, answer: str) -> None:
        if session_id:
            await self.state.remember(session_id, [Turn("user", query), Turn("assistant", answer)])

    async def _inject_faults(self) -> None:
        s = self.settings
        if s.fault_latency_ms:
            await asyncio.sleep(s.fault_latency_ms / 1000)
        if s.fault_error_rate and random.random() < s.fault_error_rate:
            raise InjectedFaultError("fault injected by FAULT_ERROR_RATE (test-only setting)")

    # --- ingestion ------------------------------------------------------------------------

    async def ingest(
        self, documents: list[DocumentIn], *, cache_required: bool = True
    ) -> list[dict[str, Any]]:
        """Chunk and write every document; on a failure, raise with what was written.

        The cache generation is bumped before writing (so a cache that cannot be invalidated
        refuses the ingest before anything is written) and after (so answers computed while
        writing are invalidated too). Cached answers therefore never outlive an ingest that
        succeeded. `cache_required=False` (the seed: an empty knowledge base has no answers
        worth caching) makes both bumps best effort."""
        written: list[dict[str, Any]] = []
        try:
            await self._invalidate_cache(cache_required)
            for index, doc in enumerate(documents):
                # CPU work proportional to the document (up to MAX_DOCUMENT_CHARS): off the loop.
                chunks = await anyio.to_thread.run_sync(
                    chunk_document,
                    doc.document_id,
                    doc.title,
                    doc.text,
                    self.settings.chunk_size,
                    self.settings.chunk_overlap,
                )
                metadata = {**doc.metadata, "source": doc.source or ""}
                try:
                    count = await self.store.upsert_document(doc.document_id, chunks, metadata)
                except StoreRejectedError as exc:
                    raise DocumentRejectedError(index, str(exc), written) from exc
                written.append({"id": doc.document_id, "chunks": count})
            await self._invalidate_cache(cache_required)
        except DocumentRejectedError:
            if written:
                await self._invalidate_cache(required=False)
            raise
        except (StoreUnavailableError, EmbeddingError) as exc:
            if written:
                await self._invalidate_cache(required=False)
            raise IngestError(str(exc), [w["id"] for w in written]) from exc
        except CacheUnavailableError as exc:
            raise IngestError(
                f"the answer cache could not be invalidated: {exc}",
                [w["id"] for w in written],
                kind="cache_unavailable",
            ) from exc
        return written

    async def _invalidate_cache(self, required: bool) -> None:
        if required:
            await self.state.bump_generation()
            return
        with contextlib.suppress(CacheUnavailableError):
            await self.state.bump_generation()


def _source(n: int, passage: Passage, cited: bool) -> Source:
    snippet = passage.text if len(passage.text) <= 300 else passage.text[:297].rstrip() + "..."
    return Source(
        n=n,
        document_id=passage.document_id,
        title=passage.title,
        source=passage.source,
        section=passage.section,
        score=round(passage.score, 4),
        snippet=snippet,
        cited=cited,
    )


# What the cache keeps of an answer: whether it was cached or degraded is per response.
_CACHED_FIELDS = {"answer", "sources", "tool_calls", "provider", "model", "covered"}
# The cached value: {PREFIX_CACHE_VALUE_KEY: those fields as one JSON object}.
PREFIX_CACHE_VALUE_KEY = "json"


@dataclass(frozen=True)
class CachedAnswer:
    """A cache hit: the answer's fields as one JSON object, serialized (from a validated Answer)
    when the answer was computed. A hit is served without parsing, validating or serializing it
    again: that was most of a hit's cost (docs/benchmarks.md)."""

    fields_json: str

    def text(self) -> str:
        answer: str = json.loads(self.fields_json)["answer"]
        return answer

    def model(self) -> Answer:
        return Answer.model_validate_json(self.fields_json).model_copy(update={"cached": True})


def _result_to_cache(result: Answer) -> dict[str, Any]:
    return {PREFIX_CACHE_VALUE_KEY: result.model_dump_json(include=_CACHED_FIELDS)}


def _result_from_cache(entry: dict[str, Any]) -> CachedAnswer:
    return CachedAnswer(entry[PREFIX_CACHE_VALUE_KEY])

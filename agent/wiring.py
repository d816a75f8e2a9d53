"""Builds the components from settings: the one place that picks implementations."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from agent.config import Settings
from agent.embeddings.base import Embedder, EmbeddingError, warm
from agent.embeddings.hashing import HashingEmbedder
from agent.embeddings.hybrid import HybridEmbedder
from agent.llm.base import LLMProvider
from agent.llm.offline import OfflineProvider
from agent.metrics import Metrics
from agent.service import AgentService, IngestError
from agent.store.state import State, make_state
from agent.store.vector import KnowledgeStore, StoreMisconfiguredError, StoreUnavailableError
from agent.tools import ToolRegistry, default_tools

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    metrics: Metrics
    llm: LLMProvider
    store: KnowledgeStore
    state: State
    tools: ToolRegistry
    service: AgentService
    api_keys: list[bytes] = field(default_factory=list)
    # not started | running | done | skipped: ... | failed: <reason> | cancelled | disabled
    seeding: str = "not started"

    async def aclose(self) -> None:
        await self.llm.aclose()
        await self.state.aclose()
        self.store.close()


def build_llm_and_embedder(settings: Settings, metrics: Metrics) -> tuple[LLMProvider, Embedder]:
    if settings.resolved_provider == "gemini":
        from agent.embeddings.gemini import GeminiEmbedder
        from agent.llm.gemini import GeminiClient, GeminiProvider

        client = GeminiClient(settings, metrics)
        return (
            GeminiProvider(client, settings.gemini_model, metrics),
            GeminiEmbedder(client, settings.gemini_embed_model, settings.embed_dimensions),
        )
    return OfflineProvider(), build_offline_embedder(settings)


def build_offline_embedder(settings: Settings) -> Embedder:
    """all-MiniLM-L6-v2 with the words' share when its package is installed (the dev and
    embedded extras), else the hashing embedder (the production image, which retrieves with
    Gemini embeddings). OFFLINE_EMBEDDER=minilm insists on the model; =hashing never loads it."""
    from agent.embeddings import minilm

    words = HashingEmbedder(settings.embed_dimensions)
    choice = settings.offline_embedder
    absent = minilm.missing() if choice != "hashing" else []
    if choice == "hashing" or absent:
        if choice == "minilm":
            raise minilm.ModelNotInstalledError(
                f"OFFLINE_EMBEDDER=minilm, but {', '.join(absent)} is not installed: "
                'pip install -e ".[dev]", or set OFFLINE_EMBEDDER=auto to fall back to hashing'
            )
        reason = "OFFLINE_EMBEDDER=hashing" if choice == "hashing" else f"missing {absent}"
        log.info("offline embedder: hashing", extra={"space": words.space, "reason": reason})
        return words
    from agent.knowledge import vectors

    # The shipped runbooks' vectors, computed ahead: a first start's seed runs no model.
    known = vectors.load(minilm.model_space())
    embedder = HybridEmbedder(minilm.MiniLMEmbedder(known=known), words)
    log.info("offline embedder: all-MiniLM-L6-v2", extra={"space": embedder.space})
    return embedder


def build_components(settings: Settings, metrics: Metrics | None = None) -> Components:
    metrics = metrics or Metrics()
    llm, embedder = build_llm_and_embedder(settings, metrics)
    store = KnowledgeStore(settings, embedder, metrics)
    state = make_state(settings, metrics)
    tools = default_tools()
    service = AgentService(settings, metrics, store, state, llm, tools)
    return Components(
        settings=settings,
        metrics=metrics,
        llm=llm,
        store=store,
        state=state,
        tools=tools,
        service=service,
        api_keys=[key.get_secret_value().encode() for key in settings.agent_api_keys],
    )


LOADING = ("not started", "running")


def mark_seeding(components: Components, state: str) -> None:
    """Record the seed's state; while it has not finished, answers are flagged as loading."""
    components.seeding = state
    components.service.knowledge_loading = state in LOADING


def _worth_retrying(exc: BaseException) -> bool:
    """Store and embedder outages pass (a Chroma server may start after the agent);
    a misconfiguration does not."""
    if isinstance(exc, StoreMisconfiguredError) or isinstance(
        exc.__cause__, StoreMisconfiguredError
    ):
        return False
    return isinstance(exc, (StoreUnavailableError, EmbeddingError, IngestError))


async def seed_if_empty(components: Components, max_wait_seconds: float = 600) -> None:
    """Load the shipped runbooks into an empty collection. Retries while the store is down;
    never fails the process."""
    from agent.knowledge.corpus import shipped_documents

    mark_seeding(components, "running")
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            wait=wait_exponential(multiplier=0.5, max=15),
            stop=stop_after_delay(max_wait_seconds),
            reraise=True,
        ):
            with attempt:
                if await components.store.count() > 0:
                    mark_seeding(components, "skipped: collection not empty")
                    return
                written = await components.service.ingest(shipped_documents(), cache_required=False)
                mark_seeding(components, "done")
                log.info("seeded knowledge base", extra={"documents": len(written)})
    except asyncio.CancelledError:
        mark_seeding(components, "cancelled")
        raise
    except Exception as exc:
        mark_seeding(components, f"failed: {exc}")
        log.error("seeding the knowledge base failed", extra={"error": str(exc)})


async def warm_embedder(components: Components) -> None:
    """Load the embedder's model, if it has one to load, now rather than at the first question;
    a failure is the first question's to report."""
    try:
        await warm(components.store.embedder)
    except Exception as exc:
        log.warning("the embedder did not warm up", extra={"error": str(exc)})

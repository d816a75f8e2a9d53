"""AgentService on the embedded store: what the API tests cannot see from outside."""

import anyio
import pytest

import agent.service
from agent.domain import DocumentIn
from agent.wiring import build_components
from tests.support.loops import on_event_loop

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_chunking_a_large_document_runs_off_the_event_loop(
    monkeypatch, make_settings
) -> None:
    where: list[bool] = []
    real = agent.service.chunk_document

    def spy(*args, **kwargs):
        where.append(on_event_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(agent.service, "chunk_document", spy)
    components = build_components(make_settings(seed_on_startup=False))
    try:
        text = ("Drain the node pool before upgrades, then cordon it. " * 4000)[:199_000]
        [written] = await components.service.ingest([DocumentIn(title="Upgrades", text=text)])
        assert written["chunks"] > 100
        assert where == [False]
    finally:
        await components.aclose()


async def test_an_answer_computed_across_an_ingest_is_not_cached_as_current(
    make_settings,
) -> None:
    """A question retrieved before an ingest and cached after it must not be served as fresh:
    the cache entry carries the generation the answer was computed under."""
    components = build_components(make_settings(seed_on_startup=False))
    service, store = components.service, components.store
    query = "what is the zorblax failover procedure?"
    real_search = store.search
    searched, release = anyio.Event(), anyio.Event()

    async def slow_search(*args, **kwargs):
        found = await real_search(*args, **kwargs)
        searched.set()
        await release.wait()
        return found

    store.search = slow_search
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.infer, query, None, None)
            await searched.wait()  # retrieved: the zorblax runbook is not there yet
            doc = DocumentIn(
                id="zorblax",
                title="Zorblax failover",
                text="The zorblax failover procedure is to run `zorblaxctl failover --region b`.",
            )
            await service.ingest([doc])
            release.set()
        store.search = real_search
        again = await service.infer(query, None, None)
        assert not again.cached, "an answer computed before the ingest was served from cache"
        assert "zorblaxctl" in again.answer
    finally:
        await components.aclose()


class _RecordingLLM:
    """Stands in for a provider: records what it is asked."""

    name = "offline"
    model = "recording"
    uses_history = False

    def __init__(self) -> None:
        self.prompts: list = []

    async def complete(self, prompt, tools, ctx):
        from agent.llm.base import Completion

        self.prompts.append(prompt)
        return Completion(text="answered", model=self.model, cited=[1] if ctx.found else [])

    async def aclose(self) -> None:
        return None


def _with_llm(components, llm) -> None:
    components.llm = components.service.llm = llm


async def test_below_the_floor_nothing_is_cited_and_no_model_is_asked(make_settings) -> None:
    components = build_components(make_settings(seed_on_startup=False, relevance_floor=0.99))
    llm = _RecordingLLM()
    _with_llm(components, llm)
    try:
        await components.service.ingest([DocumentIn(title="Drain", text="Drain the node first.")])
        answer = await components.service.infer("drain the node", None, None)
        assert answer.covered is False and answer.sources == [] and answer.degraded == []
        assert answer.answer == agent.service.NOT_COVERED_ANSWER
        assert llm.prompts == []
    finally:
        await components.aclose()


async def test_passages_below_the_floor_are_dropped_and_the_rest_answer(make_settings) -> None:
    components = build_components(make_settings(seed_on_startup=False, relevance_floor=0.3))
    llm = _RecordingLLM()
    _with_llm(components, llm)
    try:
        await components.service.ingest(
            [
                DocumentIn(id="drain", title="Drain", text="To drain a node, run kubectl drain."),
                DocumentIn(id="bread", title="Bread", text="Knead the dough for ten minutes."),
            ]
        )
        answer = await components.service.infer("how do I drain a node?", None, 4)
        assert answer.covered is True
        assert [s.document_id for s in answer.sources] == ["drain"]
        assert all(p.score >= 0.3 for p in llm.prompts[0].passages)
    finally:
        await components.aclose()


async def test_an_uncalibrated_embedder_has_no_floor(make_settings) -> None:
    components = build_components(make_settings(seed_on_startup=False, embed_dimensions=256))
    try:
        assert components.store.embedder.space == "hash-v1-256"
        assert components.service.relevance_floor is None
    finally:
        await components.aclose()


async def test_a_store_made_with_the_hashing_embedder_gets_the_models_collection_seeded(
    make_settings,
) -> None:
    """An existing .vaia/chroma from before the model: the model's collection is new, so it is
    seeded at start; the hashing collection is left as it was."""
    from agent.wiring import seed_if_empty

    old = build_components(make_settings(offline_embedder="hashing"))
    try:
        await seed_if_empty(old)
        assert old.seeding == "done"
        old_count = await old.store.count()
    finally:
        await old.aclose()

    new = build_components(make_settings(offline_embedder="auto"))
    try:
        assert new.store.collection_name != old.store.collection_name
        await seed_if_empty(new)
        assert new.seeding == "done"
        assert await new.store.count() == old_count
        answer = await new.service.infer("my volume claim never gets bound", None, None)
        assert answer.sources[0].section == "A PersistentVolumeClaim stuck in Pending"
    finally:
        await new.aclose()

    again = build_components(make_settings(offline_embedder="hashing"))
    try:
        assert await again.store.count() == old_count
    finally:
        await again.aclose()

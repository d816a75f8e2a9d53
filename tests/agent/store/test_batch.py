"""Searches batched into Chroma's calls (agent/store/batch.py), with a query function the test
holds; and the store's own searches batched against the embedded Chroma."""

import asyncio

import pytest

from agent.embeddings.hashing import HashingEmbedder
from agent.knowledge.chunking import chunk_document
from agent.metrics import Metrics
from agent.store.batch import Batcher
from agent.store.vector import KnowledgeStore, StoreUnavailableError

pytestmark = pytest.mark.anyio


class Chroma:
    """A query function whose calls are recorded and held until the test lets them go."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.go = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self, vectors, top_k):
        self.calls.append(([v[0] for v in vectors], top_k))
        await self.go.wait()
        if self.error is not None:
            raise self.error
        return [[(f"{v[0]}-{n}", 1.0 - n / 10) for n in range(top_k)] for v in vectors]


async def _started(*coroutines) -> list[asyncio.Task]:
    """Tasks of the coroutines, once they (and the call they start) wait."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    for _ in range(3):
        await asyncio.sleep(0)
    return tasks


@pytest.mark.unit
async def test_searches_that_arrive_during_a_call_go_together_in_the_next() -> None:
    chroma = Chroma()
    batcher = Batcher(chroma, timeout_s=30)
    [first] = await _started(batcher.search(["a"], 2))
    assert chroma.calls == [(["a"], 2)]  # the first goes at once, alone
    others = await _started(*(batcher.search([name], 2) for name in "bcd"))
    wide = await _started(batcher.search(["e"], 4))
    chroma.go.set()
    results = await asyncio.gather(first, *others, *wide)
    assert chroma.calls == [(["a"], 2), (["b", "c", "d"], 2), (["e"], 4)]
    assert batcher.calls == 3
    assert results[0] == [("a-0", 1.0), ("a-1", 0.9)]
    assert results[2] == [("c-0", 1.0), ("c-1", 0.9)]  # each its own answer
    assert len(results[4]) == 4


@pytest.mark.unit
async def test_a_failed_call_fails_each_of_its_searches_with_an_error_of_its_own() -> None:
    chroma = Chroma()
    chroma.error = StoreUnavailableError("ChromaDB failed (query): timed out")
    batcher = Batcher(chroma, timeout_s=30)
    tasks = await _started(*(batcher.search([name], 4) for name in "ab"))
    chroma.go.set()
    errors = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(e, StoreUnavailableError) and "timed out" in str(e) for e in errors)
    assert errors[0] is not errors[1] and errors[0].__cause__ is chroma.error


@pytest.mark.unit
async def test_a_search_given_up_is_skipped_and_the_others_answered() -> None:
    chroma = Chroma()
    batcher = Batcher(chroma, timeout_s=30)
    [first] = await _started(batcher.search(["a"], 1))
    gone, kept = await _started(batcher.search(["b"], 1), batcher.search(["c"], 1))
    gone.cancel()  # its client hung up
    await asyncio.sleep(0)
    chroma.go.set()
    assert await kept == [("c-0", 1.0)] and await first == [("a-0", 1.0)]
    assert gone.cancelled()


@pytest.mark.unit
async def test_a_search_waits_no_longer_than_its_deadline() -> None:
    batcher = Batcher(Chroma(), timeout_s=0.05)  # the call is never let go
    with pytest.raises(TimeoutError):
        await batcher.search(["a"], 1)


DOC = "## Undo\n\n" + " ".join(
    f"Rollback step {word}: run kubectl rollout undo for the {word} service and verify it."
    for word in ("falcon", "quartz", "meadow", "harbor", "lantern", "glacier", "orchid", "ember")
)


@pytest.mark.integration
async def test_the_stores_searches_at_once_take_fewer_calls_and_find_the_same(
    make_settings,
) -> None:
    store = KnowledgeStore(make_settings(), HashingEmbedder(256), Metrics())
    try:
        await store.upsert_document("doc", chunk_document("doc", "T", DOC, 200, 40), {})
        questions = [f"roll back the {w} service" for w in ("glacier", "ember", "quartz")] * 4
        alone = [await store.search(q, 3) for q in questions]
        calls = store._searches.calls
        together = await asyncio.gather(*(store.search(q, 3) for q in questions))
        assert together == alone
        assert store._searches.calls - calls < len(questions)
    finally:
        store.close()

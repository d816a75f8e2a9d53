"""The runbooks' vectors computed ahead (agent/knowledge/vectors.py): the model's own, for every
chunk the package ships, used only for the model and the texts they were computed for; the first
start's seed takes them and runs no model, which loads beside it instead."""

import anyio
import pytest

from agent.config import Settings
from agent.domain import Answer
from agent.embeddings import minilm
from agent.embeddings.base import text_key
from agent.embeddings.minilm import MiniLMEmbedder
from agent.knowledge import vectors
from agent.wiring import build_components, seed_if_empty, warm_embedder
from tests.conftest import running_app
from tests.support.processes import wait_until

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_every_shipped_chunk_has_the_models_vector(model) -> None:
    """Fails when a runbook or the model changed and the file was not computed again: run
    `invoke vectors`."""
    shipped = vectors.load(minilm.model_space())
    texts = vectors.shipped_texts()
    assert {text_key(t) for t in texts} <= set(shipped), "stale: run `invoke vectors`"
    sample = [texts[0], texts[len(texts) // 2], texts[-1]]
    for text, computed in zip(sample, model.embed_all(sample), strict=True):
        assert shipped[text_key(text)] == pytest.approx(computed, abs=1e-5)


def test_a_file_computed_for_another_model_is_not_used(tmp_path) -> None:
    path = tmp_path / "vectors.npz"
    vectors.save("another-model-1.0", ["a text"], [[0.5, 0.75]], path)
    assert vectors.load("another-model-1.0", path) == {text_key("a text"): [0.5, 0.75]}
    assert vectors.load(minilm.model_space(), path) == {}
    assert vectors.load(minilm.model_space(), tmp_path / "absent.npz") == {}


@pytest.mark.anyio
async def test_known_document_vectors_are_taken_and_the_others_computed(model) -> None:
    marked = [1.0] + [0.0] * 383  # no text of the model's embeds to this
    embedder = MiniLMEmbedder(known={text_key("a runbook chunk"): marked})
    first, second = await embedder.embed(["a runbook chunk", "kubectl rollout undo"], "document")
    assert first == marked
    assert second == pytest.approx(model.embed_all(["kubectl rollout undo"])[0], abs=1e-6)
    [asked] = await embedder.embed(["a runbook chunk"], "query")  # a question is always run
    assert asked != marked


@pytest.mark.integration
def test_the_first_seed_runs_no_model_and_the_model_loads_beside_it(tmp_path, monkeypatch):
    ran: list[str] = []
    embed_all = MiniLMEmbedder.embed_all

    def recorded(self, texts):
        ran.extend(texts)
        return embed_all(self, texts)

    monkeypatch.setattr(MiniLMEmbedder, "embed_all", recorded)
    settings = Settings(
        _env_file=None, chroma_path=tmp_path / "chroma", llm_provider="offline", log_level="warning"
    )
    components = build_components(settings)

    async def first_start() -> None:
        await seed_if_empty(components)
        await warm_embedder(components)
        answer = await components.service.answer("How do I roll back a Deployment?", None, None)
        assert isinstance(answer, Answer)
        assert answer.covered and any(s.cited for s in answer.sources)
        assert answer.sources[0].document_id == "runbook/rollbacks"

    try:
        anyio.run(first_start)
    finally:
        anyio.run(components.aclose)
    assert components.seeding == "done"
    assert ran == ["How do I roll back a Deployment?"]  # the question, no runbook chunk
    assert components.store.embedder.meaning._session is not None  # loaded by the warm-up


@pytest.mark.integration
def test_the_app_warms_the_model_without_a_question(tmp_path) -> None:
    settings = Settings(_env_file=None, chroma_path=tmp_path / "c", llm_provider="offline")
    with running_app(settings) as client:
        meaning = client.app.state.components.store.embedder.meaning
        wait_until(lambda: meaning._session is not None, 30, "the model loaded")

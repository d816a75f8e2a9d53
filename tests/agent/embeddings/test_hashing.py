import math
import subprocess
import sys

import pytest

from agent.embeddings.hashing import HashingEmbedder, tokenize
from tests.support.loops import on_event_loop

pytestmark = pytest.mark.unit


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_unit_length_and_sized() -> None:
    vector = HashingEmbedder(256).embed_one("kubectl rollout undo deployment")
    assert len(vector) == 256
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)


def test_related_text_is_closer_than_unrelated() -> None:
    e = HashingEmbedder()
    query = e.embed_one("how do I roll back a deployment")
    related = e.embed_one("To roll back a Deployment run kubectl rollout undo")
    unrelated = e.embed_one("Severity levels of incidents and the incident commander role")
    assert cosine(query, related) > cosine(query, unrelated) + 0.1


def test_character_ngrams_tolerate_inflection() -> None:
    e = HashingEmbedder()
    assert cosine(e.embed_one("autoscaling"), e.embed_one("autoscaler")) > 0.3


def test_deterministic_across_processes() -> None:
    """crc32, not Python's salted hash(): another process must produce the same vector."""
    code = "from agent.embeddings.hashing import HashingEmbedder as H; print(H(64).embed_one('hpa scale out')[:8])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_stop_words_only_gives_a_zero_vector() -> None:
    assert not any(HashingEmbedder().embed_one("how do I do it?"))


def test_tokenize_normalizes() -> None:
    assert tokenize("The  ＨＰＡ scales-out, p95!") == ["hpa", "scales-out", "p95"]


def test_space_names_model_and_dimension() -> None:
    assert HashingEmbedder(512).space == "hash-v1-512"


@pytest.mark.anyio
async def test_large_batches_are_embedded_off_the_event_loop(monkeypatch) -> None:
    """Embedding a 199,000-character document takes ~0.1 s of CPU: on the loop, it would stall
    every other request (/health included) for that long."""
    where: list[bool] = []
    real = HashingEmbedder.embed_one

    def spy(self, text: str) -> list[float]:
        where.append(on_event_loop())
        return real(self, text)

    monkeypatch.setattr(HashingEmbedder, "embed_one", spy)
    embedder = HashingEmbedder(256)
    vectors = await embedder.embed(["drain the node pool before upgrades. " * 100] * 50, "document")
    assert len(vectors) == 50 and where and not any(where)
    where.clear()
    await embedder.embed(["how do I roll back?"], "query")  # microseconds: not worth a thread hop
    assert where == [True]

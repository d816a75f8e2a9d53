import math

import pytest

from agent.embeddings.hashing import HashingEmbedder
from agent.embeddings.hybrid import HybridEmbedder

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


class Fixed:
    """An embedder with set unit vectors."""

    def __init__(self, space: str, vectors: dict[str, list[float]]) -> None:
        self.space = space
        self.vectors = vectors

    async def embed(self, texts, purpose):
        return [self.vectors[t] for t in texts]


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_the_cosine_is_the_weighted_sum_of_the_two_cosines() -> None:
    meaning = Fixed("m", {"q": [1.0, 0.0], "d": [0.6, 0.8]})
    words = Fixed("w", {"q": [0.0, 1.0, 0.0], "d": [0.0, 0.0, 1.0]})
    hybrid = HybridEmbedder(meaning, words, meaning_weight=0.8)
    [q] = await hybrid.embed(["q"], "query")
    [d] = await hybrid.embed(["d"], "document")
    assert math.isclose(math.hypot(*q), 1.0)
    assert math.isclose(cosine(q, d), 0.8 * 0.6 + 0.2 * 0.0)


async def test_a_question_of_stop_words_keeps_its_meaning_part() -> None:
    hybrid = HybridEmbedder(Fixed("m", {"how do I do it?": [1.0, 0.0]}), HashingEmbedder(64))
    [vector] = await hybrid.embed(["how do I do it?"], "query")
    assert any(vector[:2]) and not any(vector[2:])


def test_the_space_names_both_parts_and_the_weight() -> None:
    hybrid = HybridEmbedder(Fixed("all-MiniLM", {}), HashingEmbedder(768), meaning_weight=0.8)
    assert hybrid.space == "all-MiniLM+hash-v1-768-0.8"


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_a_weight_outside_zero_to_one_is_refused(weight) -> None:
    with pytest.raises(ValueError, match="meaning_weight"):
        HybridEmbedder(Fixed("m", {}), HashingEmbedder(64), meaning_weight=weight)

"""Meaning and words in one vector: a weighted concatenation of two embedders' unit vectors.

With unit vectors m (meaning: all-MiniLM-L6-v2) and w (words: the hashing embedder), the vector
[sqrt(a) m, sqrt(1 - a) w] has unit length and the cosine of two such vectors is
a cos(m) + (1 - a) cos(w): one collection, one query, and a score that rises when a passage
means what the question means *and* uses its words. On the answer evaluation
(agent/knowledge/evaluation.yaml) the words' share separates the questions the runbooks do not
cover from those they do much better than meaning alone: a question about Helm or Kafka is close
in meaning to the deploy runbooks, but none of them says "Helm" (docs/benchmarks.md, --answers).
"""

from __future__ import annotations

import math

from agent.embeddings.base import Embedder, Purpose, warm

# Chosen on the answer evaluation: 0.7 to 0.9 all did better than meaning alone (0.8 best).
MEANING_WEIGHT = 0.8


class HybridEmbedder:
    def __init__(self, meaning: Embedder, words: Embedder, meaning_weight: float = MEANING_WEIGHT):
        if not 0 < meaning_weight <= 1:
            raise ValueError(f"meaning_weight {meaning_weight}: between 0 (excluded) and 1")
        self.meaning = meaning
        self.words = words
        self.meaning_weight = meaning_weight
        self._scales = (math.sqrt(meaning_weight), math.sqrt(1 - meaning_weight))

    @property
    def space(self) -> str:
        return f"{self.meaning.space}+{self.words.space}-{self.meaning_weight:g}"

    async def warm(self) -> None:
        """Load what the embedders load ahead of their first use (a model), if anything."""
        for embedder in (self.meaning, self.words):
            await warm(embedder)

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]:
        meanings = await self.meaning.embed(texts, purpose)
        words = await self.words.embed(texts, purpose)
        m_scale, w_scale = self._scales
        return [
            [m_scale * v for v in m] + [w_scale * v for v in w]
            for m, w in zip(meanings, words, strict=True)
        ]

"""A dependency-free local embedder: signed feature hashing of word and character n-grams.

Deterministic across processes and machines (crc32, not Python's salted `hash`), so vectors
written by one process are comparable with queries from another. Good enough for lexical
retrieval over a runbook corpus, and costs microseconds, not a model download.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib

import anyio

from agent.embeddings.base import Purpose

# Up to this many characters a batch is embedded in place (a question costs ~0.1 ms); beyond,
# in a worker thread, so a large document (~0.1 s for 200,000 characters) never stalls the loop.
INLINE_CHARS = 2000

_WORD = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")
# Words too common to carry meaning in a question; keeping them would make every query similar.
STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
        "how", "i", "if", "in", "is", "it", "my", "of", "on", "or", "should", "that", "the",
        "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will",
        "with", "you", "your", "me", "our", "us",
    }
)  # fmt: skip


def tokenize(text: str) -> list[str]:
    normalized = unicodedata.normalize("NFKC", text).casefold()
    return [word for word in _WORD.findall(normalized) if word not in STOPWORDS]


class HashingEmbedder:
    def __init__(self, dimensions: int = 768, char_ngrams: tuple[int, ...] = (3, 4, 5)) -> None:
        self.dimensions = dimensions
        self.char_ngrams = char_ngrams

    @property
    def space(self) -> str:
        return f"hash-v1-{self.dimensions}"

    def _features(self, text: str) -> dict[str, float]:
        words = tokenize(text)
        weights: dict[str, float] = {}
        for word in words:
            weights["w:" + word] = weights.get("w:" + word, 0.0) + 1.0
            padded = f" {word} "
            for n in self.char_ngrams:
                for i in range(len(padded) - n + 1):
                    gram = "c:" + padded[i : i + n]
                    weights[gram] = weights.get(gram, 0.0) + 0.25
        for first, second in itertools.pairwise(words):
            key = f"b:{first} {second}"
            weights[key] = weights.get(key, 0.0) + 1.5
        return weights

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for feature, count in self._features(text).items():
            digest = zlib.crc32(feature.encode())
            sign = 1.0 if digest & 0x80000000 else -1.0
            # Sublinear term frequency: a word repeated ten times is not ten times as relevant.
            vector[digest % self.dimensions] += sign * (
                1.0 + math.log(count) if count >= 1 else count
            )
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector

    def embed_all(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]:
        if sum(map(len, texts)) <= INLINE_CHARS:
            return self.embed_all(texts)
        return await anyio.to_thread.run_sync(self.embed_all, texts)

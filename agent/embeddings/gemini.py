"""Gemini embeddings (gemini-embedding-001 by default), batched and retried like generation.

Requests go through the agent's Gemini client with bodies built here (agent/llm/gemini.py says
why; tests/agent/llm/test_gemini_wire.py checks they are the SDK's). Query vectors are kept in a
small LRU cache: the same question comes back with another session history (a different
answer-cache key), after an ingest invalidated the answers, and as the model's own
search_knowledge queries; its vector depends only on the text, the model and the dimensions.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from cachetools import LRUCache

from agent.embeddings.base import EmbeddingError, Purpose
from agent.llm.base import LLMError
from agent.llm.gemini import GeminiClient, model_path, text_content

# batchEmbedContents takes at most 100 texts a request.
BATCH_SIZE = 100
# Query vectors kept, as arrays of doubles: 768 dimensions take 6 KB each, so 12 MB in all.
QUERY_CACHE_SIZE = 2048
_TASK = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}


class GeminiEmbedder:
    def __init__(
        self,
        client: GeminiClient,
        model: str,
        dimensions: int,
        query_cache_size: int = QUERY_CACHE_SIZE,
    ) -> None:
        self._client = client
        self.model = model
        self.dimensions = dimensions
        self._path = model_path(model)
        self._queries: LRUCache[str, array[float]] | None = (
            LRUCache(maxsize=query_cache_size) if query_cache_size > 0 else None
        )

    @property
    def space(self) -> str:
        return f"{self.model}-{self.dimensions}"

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]:
        cache = self._queries if purpose == "query" else None
        if cache is not None and len(texts) == 1:
            known = cache.get(texts[0])
            if known is not None:
                return [list(known)]  # a copy: callers own what they get
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            vectors.extend(await self._embed_batch(texts[start : start + BATCH_SIZE], purpose))
        if cache is not None:
            for text, vector in zip(texts, vectors, strict=True):
                cache[text] = array("d", vector)
        return vectors

    async def _embed_batch(self, batch: list[str], purpose: Purpose) -> list[list[float]]:
        # `models.embed_content(model, contents=batch, config=EmbedContentConfig(task_type=...,
        # output_dimensionality=...))` on the wire: one batchEmbedContents request.
        body = {"requests": [self._request(text, purpose) for text in batch]}
        try:
            answer = await self._client.post(self.model, "batchEmbedContents", body)
        except LLMError as exc:
            raise EmbeddingError(f"Gemini embeddings failed: {exc}") from exc
        embeddings = answer.get("embeddings") or []
        if len(embeddings) != len(batch):
            raise EmbeddingError(
                f"Gemini returned {len(embeddings)} embeddings for {len(batch)} texts"
            )
        return [_normalized(e.get("values") or []) for e in embeddings]

    def _request(self, text: str, purpose: Purpose) -> dict[str, Any]:
        return {
            "content": text_content("user", text),
            "taskType": _TASK[purpose],
            "outputDimensionality": self.dimensions,
            "model": self._path,
        }


def _normalized(values: list[float]) -> list[float]:
    # Truncated (output_dimensionality < 3072) Gemini vectors are not unit length.
    norm = math.hypot(*values)
    return [v / norm for v in values] if norm else list(values)

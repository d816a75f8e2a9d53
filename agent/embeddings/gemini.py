"""Gemini embeddings (gemini-embedding-001 by default), batched and retried like generation."""

from __future__ import annotations

import math

from google.genai import types

from agent.embeddings.base import EmbeddingError, Purpose
from agent.llm.base import LLMError
from agent.llm.gemini import GeminiClient

# batchEmbedContents takes at most 100 texts a request.
BATCH_SIZE = 100
_TASK = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}


class GeminiEmbedder:
    def __init__(self, client: GeminiClient, model: str, dimensions: int) -> None:
        self._client = client
        self.model = model
        self.dimensions = dimensions

    @property
    def space(self) -> str:
        return f"{self.model}-{self.dimensions}"

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]:
        config = types.EmbedContentConfig(
            task_type=_TASK[purpose], output_dimensionality=self.dimensions
        )
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch: list[types.ContentUnion] = list(texts[start : start + BATCH_SIZE])

            async def embed_batch(
                batch: list[types.ContentUnion] = batch,
            ) -> types.EmbedContentResponse:
                return await self._client.client.aio.models.embed_content(
                    model=self.model, contents=batch, config=config
                )

            try:
                response = await self._client.call(embed_batch)
            except LLMError as exc:
                raise EmbeddingError(f"Gemini embeddings failed: {exc}") from exc
            embeddings = response.embeddings or []
            if len(embeddings) != len(batch):
                raise EmbeddingError(
                    f"Gemini returned {len(embeddings)} embeddings for {len(batch)} texts"
                )
            vectors.extend(_normalized(e.values or []) for e in embeddings)
        return vectors


def _normalized(values: list[float]) -> list[float]:
    # Truncated (output_dimensionality < 3072) Gemini vectors are not unit length.
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm else list(values)

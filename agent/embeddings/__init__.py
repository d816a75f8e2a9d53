"""Text embedders. Each has a `space` id; vectors of different spaces never share a collection."""

from agent.embeddings.base import Embedder, EmbeddingError
from agent.embeddings.hashing import HashingEmbedder

__all__ = ["Embedder", "EmbeddingError", "HashingEmbedder"]

from __future__ import annotations

from typing import Literal, Protocol

Purpose = Literal["document", "query"]


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (for example the remote API is down)."""


class Embedder(Protocol):
    @property
    def space(self) -> str:
        """Identifies the vector space: model and dimension. Used to name the collection."""
        ...

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]: ...

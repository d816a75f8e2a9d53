from __future__ import annotations

import hashlib
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


async def warm(embedder: Embedder) -> None:
    """Embedders that load a model ahead (a `warm` method) load it now; the others need not."""
    warm_up = getattr(embedder, "warm", None)
    if warm_up is not None:
        await warm_up()


def text_key(text: str) -> str:
    """What vectors computed ahead are kept by: the SHA-256 of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

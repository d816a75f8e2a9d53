"""The shipped runbooks' vectors, computed ahead by the offline model: the seed of a first start
takes them instead of running all-MiniLM-L6-v2 on each of the runbooks' chunks (91 of them:
seconds on two cores, while every answer says the knowledge base is still loading).

They are keyed by both things they depend on: the model (the embedder's space, its package's
version included: a file computed for another is not used) and each chunk's text (its SHA-256: a
chunk whose text changed, a runbook added, other chunk settings find no vector and are embedded
as any other text). `invoke vectors` computes the file again; tests/agent/knowledge/
test_vectors.py fails when it no longer covers the runbooks the package ships.
"""

from __future__ import annotations

from pathlib import Path

from agent.embeddings.base import text_key

FILE = Path(__file__).with_name("corpus-vectors.npz")


def load(space: str, path: Path = FILE) -> dict[str, list[float]]:
    """The vectors by text key, when the file was computed for `space`; else none."""
    import numpy as np

    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if str(data["space"]) != space:
            return {}
        return {str(k): v.tolist() for k, v in zip(data["keys"], data["vectors"], strict=True)}


def save(space: str, texts: list[str], vectors: list[list[float]], path: Path = FILE) -> None:
    import numpy as np

    np.savez(
        path,
        space=np.array(space),
        keys=np.array([text_key(text) for text in texts]),
        vectors=np.array(vectors, dtype=np.float32),
    )


def shipped_texts() -> list[str]:
    """What the seed embeds: the shipped runbooks' chunks at the default chunk settings."""
    from agent.config import Settings
    from agent.knowledge.chunking import chunk_document
    from agent.knowledge.corpus import shipped_documents

    fields = Settings.model_fields
    size, overlap = fields["chunk_size"].default, fields["chunk_overlap"].default
    return [
        chunk.embedding_text()
        for doc in shipped_documents()
        for chunk in chunk_document(doc.document_id, doc.title, doc.text, size, overlap)
    ]


def compute(path: Path = FILE) -> int:
    """Embed the shipped runbooks' chunks with the offline model and write them; how many."""
    from agent.embeddings.minilm import MiniLMEmbedder

    model = MiniLMEmbedder()
    texts = sorted(set(shipped_texts()))
    save(model.space, texts, model.embed_all(texts), path)
    return len(texts)

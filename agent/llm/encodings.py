"""The content encodings of agent/llm/http.py: the ones httpx asks a server for where it runs
(gzip and deflate; br where brotli is installed, as in the dev extra, not in the image), so that
the agent's requests stay the SDK's (tests/agent/llm/test_gemini_wire.py), and a decoder for
each."""

from __future__ import annotations

import importlib
import zlib
from typing import Any, Protocol


class UnsupportedEncodingError(ValueError):
    """The server sent a body in an encoding this client did not ask for."""


class Decoder(Protocol):
    def decompress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Brotli:
    def __init__(self, module: Any) -> None:
        self._decompressor = module.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        out: bytes = self._decompressor.process(data)
        return out

    def flush(self) -> bytes:
        return b""


class _Deflate:
    """zlib's wrapper, or raw deflate as some servers send it (as httpx reads both)."""

    def __init__(self) -> None:
        self._first = True
        self._decompressor = zlib.decompressobj()

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._decompressor.decompress(data)
            except zlib.error:
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._decompressor.decompress(data)

    def flush(self) -> bytes:
        return self._decompressor.flush()


def _brotli() -> Any:
    try:
        return importlib.import_module("brotli")  # optional, and untyped
    except ImportError:
        return None


_BROTLI = _brotli()
# What httpx asks for where it runs (it adds br when brotli is installed).
ACCEPT_ENCODING = "gzip, deflate" + (", br" if _BROTLI is not None else "")


def decoder(encoding: str) -> Decoder | None:
    """The decoder of a Content-Encoding header's value; None for a body sent as it is."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding == "gzip":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Deflate()
    if encoding == "br" and _BROTLI is not None:
        return _Brotli(_BROTLI)
    raise UnsupportedEncodingError(f"the server sent an encoding not asked for: {encoding}")

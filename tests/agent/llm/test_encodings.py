"""The content encodings the Gemini client asks for and reads (agent/llm/encodings.py)."""

import gzip
import zlib

import httpx
import pytest

from agent.llm.encodings import ACCEPT_ENCODING, UnsupportedEncodingError, decoder

pytestmark = pytest.mark.unit
BODY = b'{"candidates": [{"content": {"parts": [{"text": "roll back"}]}}]}' * 20


def _decoded(encoding: str, data: bytes, pieces: int = 7) -> bytes:
    """`data` fed to the decoder in pieces, as a body comes."""
    decode = decoder(encoding)
    assert decode is not None
    size = -(-len(data) // pieces)
    out = b"".join(decode.decompress(data[i : i + size]) for i in range(0, len(data), size))
    return out + decode.flush()


def test_what_httpx_asks_for_here_is_what_the_client_asks_for() -> None:
    """So that the agent's requests stay the SDK's, which goes through httpx."""
    assert httpx.AsyncClient().headers["accept-encoding"] == ACCEPT_ENCODING


def test_gzip_and_both_kinds_of_deflate_are_read_in_pieces() -> None:
    assert _decoded("gzip", gzip.compress(BODY)) == BODY
    assert _decoded("deflate", zlib.compress(BODY)) == BODY  # zlib's wrapper
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert _decoded(" Deflate", raw.compress(BODY) + raw.flush()) == BODY  # as some servers do


def test_a_body_sent_as_it_is_has_no_decoder_and_an_unasked_encoding_is_refused() -> None:
    assert decoder("") is None and decoder("identity") is None
    with pytest.raises(UnsupportedEncodingError, match="compress"):
        decoder("compress")


def test_br_is_read_where_it_is_asked_for() -> None:
    if "br" not in ACCEPT_ENCODING:
        with pytest.raises(UnsupportedEncodingError):
            decoder("br")
        return
    import brotli

    assert _decoded("br", brotli.compress(BODY)) == BODY

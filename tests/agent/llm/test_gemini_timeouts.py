"""Every Gemini path has a deadline of its own, against the stand-in in its own process: an
answer that trickles in a byte at a time (so that no read ever times out) is ended at
LLM_TIMEOUT_SECONDS, for generation and embeddings alike, and so is a stream whose first chunk
does not come. (A stream that stalls between chunks: test_stream.py.)"""

import time

import anyio
import pytest

from agent.embeddings.base import EmbeddingError
from agent.embeddings.gemini import GeminiEmbedder
from agent.llm.base import LLMTimeoutError
from agent.llm.gemini import GeminiClient, text_content
from agent.metrics import Metrics
from tests.support.serving import gemini_process

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
BODY = {"contents": [text_content("user", "how do I roll back?")]}
DEADLINE = 1.0


@pytest.fixture(scope="module")
def standin():
    with gemini_process(trickle=True, latency_ms=0) as running:
        yield running


@pytest.fixture
async def client(standin, make_settings):
    settings = make_settings(
        llm_provider="gemini",
        gemini_api_key="k",
        google_gemini_base_url=standin.url,
        llm_timeout_seconds=DEADLINE,
        llm_max_attempts=1,
    )
    client = GeminiClient(settings, Metrics())
    yield client
    await client.aclose()


async def test_a_generate_answer_that_trickles_in_ends_at_the_deadline(client) -> None:
    started = time.monotonic()
    # The whole answer would take about a minute at 5 bytes a second; each byte comes well
    # within httpx's read timeout (LLM_TIMEOUT_SECONDS too), so only a deadline on the call ends it.
    with anyio.fail_after(20), pytest.raises(LLMTimeoutError):
        await client.post("m", "generateContent", BODY)
    assert time.monotonic() - started < 10


async def test_an_embedding_that_trickles_in_ends_at_the_deadline(client) -> None:
    embedder = GeminiEmbedder(client, "gemini-embedding-001", 768)
    started = time.monotonic()
    with anyio.fail_after(20), pytest.raises(EmbeddingError, match="in time"):
        await embedder.embed(["how do I roll back?"], "query")
    assert time.monotonic() - started < 10


async def test_a_stream_whose_first_chunk_does_not_come_ends_at_the_deadline(
    client, standin
) -> None:
    standin.control(stream_ms=60_000)  # the first of 5 chunks after 12 s
    started = time.monotonic()
    try:
        with anyio.fail_after(20), pytest.raises(LLMTimeoutError, match="first chunk"):
            async for _ in client.stream("m", BODY):
                pass
    finally:
        standin.control(stream_ms=1000)
    assert time.monotonic() - started < 10


@pytest.mark.unit
def test_the_client_and_every_request_carry_the_timeout(make_settings) -> None:
    """httpx's default was 5 s whatever the setting; google-genai set none by default."""
    settings = make_settings(llm_provider="gemini", gemini_api_key="k", llm_timeout_seconds=6.5)
    client = GeminiClient(settings, Metrics())
    assert client.timeout == 6.5 and client.http.connect_timeout_s == 6.5
    for path in ("models/m:generateContent", "models/m:streamGenerateContent?alt=sse"):
        request = client.http.request_bytes(path, b"{}")
        assert b"\r\nx-server-timeout: 7\r\n" in request  # whole seconds, rounded up

"""The Gemini client's connections under concurrency, against the stand-in in its own process
(keep-alive, slow answers): connections are counted, not timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from agent.llm.gemini import POOL_CONNECTIONS, GeminiClient, text_content
from agent.metrics import Metrics
from devstack.harness.services import gemini_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
WAVE = 40  # concurrent calls: more than httpx's default of 20 kept alive


@pytest.fixture(scope="module")
def slow_gemini() -> Iterator[str]:
    with gemini_server(latency_ms=300) as standin:
        yield standin.url


def _connections(url: str) -> int:
    """Distinct client connections that called the stand-in so far."""
    return int(httpx.get(url + "/stats").json()["connections"])


async def test_the_pool_keeps_every_concurrent_connection(slow_gemini, make_settings) -> None:
    settings = make_settings(
        llm_provider="gemini", gemini_api_key="k", google_gemini_base_url=slow_gemini
    )
    client = GeminiClient(settings, Metrics())
    body = {"contents": [text_content("user", "hi")]}
    try:
        before = _connections(slow_gemini)
        for _ in range(2):
            answers = await asyncio.gather(
                *[client.post("m", "generateContent", body) for _ in range(WAVE)]
            )
            assert all(a["candidates"][0]["content"]["parts"][0]["text"] for a in answers)
        assert _connections(slow_gemini) - before <= WAVE  # the second wave reuses them
        assert client.http.connections <= WAVE <= POOL_CONNECTIONS
    finally:
        await client.aclose()
    assert client.http.connections == 0


async def test_control_httpxs_default_pool_reopens_connections(slow_gemini) -> None:
    """What the test above rules out: httpx's default pool closes all but 20 after a wave."""
    before = _connections(slow_gemini)
    async with httpx.AsyncClient() as http:
        for _ in range(2):
            await asyncio.gather(
                *[http.post(f"{slow_gemini}/v1/models/m:generateContent") for _ in range(WAVE)]
            )
    assert _connections(slow_gemini) - before > WAVE

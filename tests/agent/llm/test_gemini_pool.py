"""The Gemini client's connection pool under concurrency, against the stand-in in its own process
(keep-alive, slow answers): connections are counted, not timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from agent.llm.gemini import POOL_CONNECTIONS, GeminiClient, text_content
from agent.llm.pool import SHARD_CONNECTIONS, ShardedTransport
from agent.metrics import Metrics
from devstack.harness.services import gemini_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
WAVE = 40  # concurrent calls: more than httpx's default of 20 kept alive


@pytest.fixture(scope="module")
def slow_gemini() -> Iterator[str]:
    with gemini_server(latency_ms=300) as standin:
        yield standin.url


def _stats(url: str) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(url + "/stats").json()
    return stats


async def _waves(url: str, http: httpx.AsyncClient) -> int:
    """Two waves of WAVE concurrent generate calls; how many connections the server saw."""
    before = _stats(url)["connections"]
    body = {"contents": [text_content("user", "hi")]}
    for _ in range(2):
        responses = await asyncio.gather(
            *[http.post(f"{url}/v1beta/models/m:generateContent", json=body) for _ in range(WAVE)]
        )
        assert all(r.status_code == 200 for r in responses)
    return _stats(url)["connections"] - before


async def test_the_pool_keeps_every_concurrent_connection(slow_gemini, make_settings) -> None:
    settings = make_settings(
        llm_provider="gemini", gemini_api_key="k", google_gemini_base_url=slow_gemini
    )
    client = GeminiClient(settings, Metrics())
    try:
        assert isinstance(client._http._transport, ShardedTransport)
        assert await _waves(slow_gemini, client._http) <= WAVE  # the second wave reuses them
        assert client._http._transport.busy == [0] * len(client._http._transport.shards)
        body = {"contents": [text_content("user", "through the client")]}
        answer = await client.post("m", "generateContent", body)
        assert answer["candidates"][0]["content"]["parts"][0]["text"]
    finally:
        await client.aclose()


async def test_control_the_default_pool_reopens_connections(slow_gemini) -> None:
    """What the test above rules out: httpx's default pool closes all but 20 after a wave."""
    async with httpx.AsyncClient() as http:
        assert await _waves(slow_gemini, http) > WAVE


async def test_shards_fill_evenly_and_are_released_on_errors(slow_gemini) -> None:
    transport = ShardedTransport(POOL_CONNECTIONS)
    assert len(transport.shards) * SHARD_CONNECTIONS >= POOL_CONNECTIONS
    async with httpx.AsyncClient(transport=transport) as http:
        tasks = [
            asyncio.ensure_future(http.post(f"{slow_gemini}/v1beta/models/m:generateContent"))
            for _ in range(len(transport.shards) * 3)
        ]
        await asyncio.sleep(0.1)
        assert transport.busy == [3] * len(transport.shards)
        await asyncio.gather(*tasks)
        assert transport.busy == [0] * len(transport.shards)
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/")
        assert transport.busy == [0] * len(transport.shards)

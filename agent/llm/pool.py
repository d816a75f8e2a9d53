"""An HTTP transport for many concurrent Gemini calls: several small connection pools.

httpcore's pool re-examines its connections whenever a request starts or a
response closes, and asks every idle one whether the server has closed it, a socket probe each.
With a pool sized for a hundred concurrent requests that is hundreds of probes per agent request:
a third of the agent's CPU at 100 concurrent clients (docs/benchmarks.md). Split into shards of
a few connections, each pass looks at one shard only, and a request goes to the least busy shard,
so the shards fill evenly and the total is what the pod needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

# Connections per shard: with 16, the pool's passes still took 13% of the agent's GIL time at 100
# clients; with 8, 0.3-0.7 ms less CPU a request (docs/benchmarks.md).
SHARD_CONNECTIONS = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, connections: int, per_shard: int = SHARD_CONNECTIONS, keepalive_expiry: float = 5.0
    ) -> None:
        shards = max(1, -(-connections // per_shard))
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry,
        )
        self.shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self.busy = [0] * shards  # requests sent on each shard whose response is not closed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        busy = self.busy
        shard = busy.index(min(busy))
        busy[shard] += 1
        try:
            response = await self.shards[shard].handle_async_request(request)
        except BaseException:
            busy[shard] -= 1
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _Released(stream, lambda: self._release(shard))
        return response

    def _release(self, shard: int) -> None:
        self.busy[shard] -= 1

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


class _Released(httpx.AsyncByteStream):
    """The response body; closing it (once) tells the transport the shard has one less."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

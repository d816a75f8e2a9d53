"""Shared state: response cache, session memory and rate-limit counters.

`RedisState` keeps them in Redis (through redis.asyncio) so every replica shares them;
`MemoryState` keeps them in the process (for `invoke dev` or when REDIS_URL is unset).
Redis is never a reason to fail a request: when a call fails, `RedisState` answers from its
in-process fallback, reports the dependency down, and stays away from Redis for a short
cooldown instead of paying a timeout on every request.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import redis.asyncio as aioredis
from cachetools import TTLCache
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from agent.config import Settings
from agent.domain import Turn
from agent.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "vaia:"
GENERATION_KEY = PREFIX + "kb:generation"
RATE_WINDOW_SECONDS = 60

CacheResult = Literal["hit", "miss", "error"]


class CacheUnavailableError(RuntimeError):
    """The shared cache could not be invalidated (Redis did not answer)."""


@dataclass(frozen=True)
class CacheLookup:
    value: dict[str, Any] | None
    result: CacheResult
    # The knowledge base's generation when the answer was looked up: an answer computed now is
    # cached under it, so an ingest that lands meanwhile still invalidates it. None: no cache.
    generation: int | None


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class State(Protocol):
    backend: str

    async def get_cached(self, key: str) -> CacheLookup: ...
    async def set_cached(self, key: str, value: dict[str, Any], generation: int) -> None: ...
    async def bump_generation(self) -> None:
        """Invalidate every cached answer; raises CacheUnavailableError when it cannot."""

    async def history(self, session_id: str) -> list[Turn]: ...
    async def remember(self, session_id: str, turns: list[Turn]) -> None: ...
    async def rate_limit(self, client_id: str, limit: int | None = None) -> RateDecision:
        """Count one request of `client_id` in this minute's window (RATE_LIMIT_PER_MINUTE
        unless `limit` is given) and decide."""

    async def rate_peek(self, client_id: str, limit: int) -> RateDecision:
        """Whether one more would be allowed, without counting it."""

    async def ping(self) -> None: ...
    async def aclose(self) -> None: ...


def _window(now: float) -> tuple[int, int]:
    start = int(now // RATE_WINDOW_SECONDS) * RATE_WINDOW_SECONDS
    return start, start + RATE_WINDOW_SECONDS - int(now)


def _decide(count: int, limit: int, reset: int) -> RateDecision:
    return RateDecision(count <= limit, limit, max(limit - count, 0), max(reset, 1))


def _peeked(count: int, limit: int, reset: int) -> RateDecision:
    return _decide(count + 1, limit, reset)


class MemoryState:
    backend = "memory"

    def __init__(self, settings: Settings, max_entries: int = 10_000) -> None:
        self._settings = settings
        self._cache: TTLCache[str, dict[str, Any]] = TTLCache(
            maxsize=max_entries, ttl=max(settings.cache_ttl_seconds, 1)
        )
        self._sessions: TTLCache[str, deque[Turn]] = TTLCache(
            maxsize=max_entries, ttl=settings.session_ttl_seconds
        )
        self._counters: TTLCache[str, int] = TTLCache(maxsize=max_entries, ttl=RATE_WINDOW_SECONDS)
        self._generation = 0

    async def get_cached(self, key: str) -> CacheLookup:
        entry = self._cache.get(key)
        if entry is None or entry.get("gen") != self._generation:
            return CacheLookup(None, "miss", self._generation)
        return CacheLookup(entry["value"], "hit", self._generation)

    async def set_cached(self, key: str, value: dict[str, Any], generation: int) -> None:
        if self._settings.cache_ttl_seconds > 0:
            self._cache[key] = {"gen": generation, "value": value}

    async def bump_generation(self) -> None:
        self._generation += 1

    async def history(self, session_id: str) -> list[Turn]:
        return list(self._sessions.get(session_id, ()))

    async def remember(self, session_id: str, turns: list[Turn]) -> None:
        limit = self._settings.session_max_turns * 2
        if limit == 0:
            return
        stored = self._sessions.get(session_id) or deque(maxlen=limit)
        stored.extend(turns)
        self._sessions[session_id] = stored  # re-set: refreshes the TTL like Redis EXPIRE

    async def rate_limit(self, client_id: str, limit: int | None = None) -> RateDecision:
        start, reset = _window(time.time())
        key = f"{client_id}:{start}"
        count = self._counters.get(key, 0) + 1
        self._counters[key] = count
        return _decide(
            count, self._settings.rate_limit_per_minute if limit is None else limit, reset
        )

    async def rate_peek(self, client_id: str, limit: int) -> RateDecision:
        start, reset = _window(time.time())
        return _peeked(self._counters.get(f"{client_id}:{start}", 0), limit, reset)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RedisState:
    backend = "redis"

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._fallback = MemoryState(settings)
        self._down_until = 0.0
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url or "",
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            decode_responses=True,
            # One immediate retry on a broken connection, none on a timeout: after a Redis
            # restart the pooled connection is dead and a fresh one answers (without the retry
            # the first call fails and starts a cooldown); a Redis that hangs costs one timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )

    async def _try(
        self, what: str, op: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if time.monotonic() < self._down_until:
            return await fallback()
        try:
            result = await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._settings.redis_cooldown_seconds
            self._metrics.dependency_up.labels("redis").set(0)
            log.warning(
                "redis call failed, using in-process fallback",
                # str, not repr: redis-py's repr is only its class ("network:ConnectionError").
                extra={"operation": what, "error": f"{type(exc).__name__}: {exc}"},
            )
            return await fallback()
        self._metrics.dependency_up.labels("redis").set(1)
        return result

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self._down_until

    async def get_cached(self, key: str) -> CacheLookup:
        async def op() -> CacheLookup:
            raw, stored = await self.redis.mget(PREFIX + "cache:" + key, GENERATION_KEY)
            generation = int(stored or 0)
            if raw is None:
                return CacheLookup(None, "miss", generation)
            entry = json.loads(raw)
            if entry.get("gen") != generation:
                # Written before the knowledge base last changed.
                return CacheLookup(None, "miss", generation)
            return CacheLookup(entry["value"], "hit", generation)

        async def degraded() -> CacheLookup:
            return CacheLookup(None, "error", None)

        return await self._try("cache get", op, degraded)

    async def set_cached(self, key: str, value: dict[str, Any], generation: int) -> None:
        ttl = self._settings.cache_ttl_seconds
        if ttl <= 0:
            return
        payload = json.dumps({"gen": generation, "value": value})

        async def op() -> None:
            await self.redis.set(PREFIX + "cache:" + key, payload, ex=ttl)

        await self._try("cache set", op, _nothing)

    async def bump_generation(self) -> None:
        """No fallback here: a bump only in this process would leave the other replicas, and
        this one once Redis is back, serving answers that predate the change. Ignores the
        cooldown (ingestion is rare and must know)."""
        try:
            await self.redis.incr(GENERATION_KEY)
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._settings.redis_cooldown_seconds
            self._metrics.dependency_up.labels("redis").set(0)
            raise CacheUnavailableError(f"Redis did not answer: {exc!r}") from exc
        self._metrics.dependency_up.labels("redis").set(1)

    async def history(self, session_id: str) -> list[Turn]:
        async def op() -> list[Turn]:
            raw = await self.redis.lrange(PREFIX + "session:" + session_id, 0, -1)
            return [Turn(**json.loads(item)) for item in raw]

        return await self._try("session read", op, lambda: self._fallback.history(session_id))

    async def remember(self, session_id: str, turns: list[Turn]) -> None:
        limit = self._settings.session_max_turns * 2
        if limit == 0:
            return
        key = PREFIX + "session:" + session_id

        async def op() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *[json.dumps({"role": t.role, "text": t.text}) for t in turns])
                pipe.ltrim(key, -limit, -1)
                pipe.expire(key, self._settings.session_ttl_seconds)
                await pipe.execute()

        await self._try("session write", op, lambda: self._fallback.remember(session_id, turns))

    async def rate_limit(self, client_id: str, limit: int | None = None) -> RateDecision:
        start, reset = _window(time.time())
        key = f"{PREFIX}ratelimit:{client_id}:{start}"
        limit = self._settings.rate_limit_per_minute if limit is None else limit

        async def op() -> RateDecision:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, RATE_WINDOW_SECONDS + 1)
                count, _ = await pipe.execute()
            return _decide(int(count), limit, reset)

        return await self._try(
            "rate limit", op, lambda: self._fallback.rate_limit(client_id, limit)
        )

    async def rate_peek(self, client_id: str, limit: int) -> RateDecision:
        start, reset = _window(time.time())

        async def op() -> RateDecision:
            count = await self.redis.get(f"{PREFIX}ratelimit:{client_id}:{start}")
            return _peeked(int(count or 0), limit, reset)

        return await self._try("rate limit", op, lambda: self._fallback.rate_peek(client_id, limit))

    async def ping(self) -> None:
        """Readiness probe: raises when Redis does not answer (ignores the cooldown)."""
        try:
            await self.redis.ping()
        except (RedisError, OSError, TimeoutError):
            self._metrics.dependency_up.labels("redis").set(0)
            raise
        self._down_until = 0.0
        self._metrics.dependency_up.labels("redis").set(1)

    async def aclose(self) -> None:
        await self.redis.aclose()


async def _nothing() -> None:
    return None


def make_state(settings: Settings, metrics: Metrics) -> State:
    if settings.redis_url:
        return RedisState(settings, metrics)
    return MemoryState(settings)

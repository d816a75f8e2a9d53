"""Cache, session memory and rate limit: in-process, and on a real redis-server."""

import pytest
from redis.exceptions import RedisError

from agent.domain import Turn
from agent.metrics import Metrics
from agent.store.state import CacheUnavailableError, MemoryState, RedisState

pytestmark = pytest.mark.anyio


async def get(state, key: str) -> tuple[object, str]:
    lookup = await state.get_cached(key)
    return lookup.value, lookup.result


async def put(state, key: str, value: dict) -> None:
    """What the service does: cache under the generation seen when it looked the key up."""
    lookup = await state.get_cached(key)
    if lookup.generation is not None:
        await state.set_cached(key, value, lookup.generation)


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("redis", marks=pytest.mark.integration),
    ]
)
async def state(request, make_settings):
    settings_kw = {"session_max_turns": 2, "rate_limit_per_minute": 3, "cache_ttl_seconds": 60}
    if request.param == "memory":
        yield MemoryState(make_settings(**settings_kw))
        return
    url = request.getfixturevalue("redis_url")
    store = RedisState(make_settings(redis_url=url, **settings_kw), Metrics())
    yield store
    await store.aclose()


async def test_cache_roundtrip_and_miss(state) -> None:
    assert await get(state, "k") == (None, "miss")
    await put(state, "k", {"answer": "a", "n": [1, 2]})
    assert await get(state, "k") == ({"answer": "a", "n": [1, 2]}, "hit")


async def test_generation_bump_invalidates_every_cached_answer(state) -> None:
    await put(state, "k1", {"a": 1})
    await put(state, "k2", {"a": 2})
    await state.bump_generation()
    assert await get(state, "k1") == (None, "miss")
    assert await get(state, "k2") == (None, "miss")
    await put(state, "k1", {"a": 3})
    assert await get(state, "k1") == ({"a": 3}, "hit")


async def test_an_answer_looked_up_before_a_bump_is_cached_as_stale(state) -> None:
    lookup = await state.get_cached("k")  # the answer is computed from the old knowledge base
    await state.bump_generation()  # an ingest lands meanwhile
    await state.set_cached("k", {"a": "old"}, lookup.generation)
    assert await get(state, "k") == (None, "miss")


async def test_session_keeps_the_last_turns_in_order(state) -> None:
    assert await state.history("unknown-session") == []
    for i in range(3):
        await state.remember("s1", [Turn("user", f"q{i}"), Turn("assistant", f"a{i}")])
    history = await state.history("s1")
    assert [t.text for t in history] == ["q1", "a1", "q2", "a2"]  # session_max_turns=2
    assert history[0].role == "user"
    assert await state.history("s2") == []


async def test_rate_limit_counts_per_client(state) -> None:
    decisions = [await state.rate_limit("ip:1") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(1 <= d.reset_seconds <= 60 for d in decisions)
    assert (await state.rate_limit("ip:2")).allowed


@pytest.mark.integration
async def test_redis_shares_state_between_replicas(redis_url, make_settings) -> None:
    settings = make_settings(redis_url=redis_url)
    one, two = RedisState(settings, Metrics()), RedisState(settings, Metrics())
    try:
        await put(one, "k", {"v": 1})
        await one.remember("s", [Turn("user", "hello")])
        assert await get(two, "k") == ({"v": 1}, "hit")
        assert [t.text for t in await two.history("s")] == ["hello"]
        await two.bump_generation()
        assert (await get(one, "k"))[1] == "miss"
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.integration
async def test_redis_killed_mid_test_falls_back_then_recovers(redis_server, make_settings) -> None:
    metrics = Metrics()
    settings = make_settings(
        redis_url=redis_server.url, redis_cooldown_seconds=0, rate_limit_per_minute=5
    )
    state = RedisState(settings, metrics)
    try:
        await put(state, "k", {"v": 1})
        assert (await get(state, "k"))[1] == "hit"
        assert metrics.dependency_up.labels("redis")._value.get() == 1

        redis_server.kill()
        assert await get(state, "k") == (None, "error")  # degraded, not raised
        assert metrics.dependency_up.labels("redis")._value.get() == 0
        await put(state, "k2", {"v": 2})  # silently skipped
        await state.remember("s", [Turn("user", "kept in process")])
        assert [t.text for t in await state.history("s")] == ["kept in process"]
        assert (await state.rate_limit("ip:x")).allowed
        with pytest.raises(RedisError):
            await state.ping()
        with pytest.raises(CacheUnavailableError):  # no in-process bump that others miss
            await state.bump_generation()

        redis_server.start()
        await state.ping()
        assert metrics.dependency_up.labels("redis")._value.get() == 1
        await put(state, "k3", {"v": 3})
        assert (await get(state, "k3"))[1] == "hit"
    finally:
        await state.aclose()


@pytest.mark.integration
async def test_cooldown_skips_redis_after_a_failure(redis_server, make_settings) -> None:
    state = RedisState(
        make_settings(redis_url=redis_server.url, redis_cooldown_seconds=60), Metrics()
    )
    try:
        redis_server.kill()
        assert (await get(state, "k"))[1] == "error"
        redis_server.start()
        # Still within the cooldown: no Redis call is made, the fallback answers.
        assert (await get(state, "k"))[1] == "error"
        assert not state.healthy
        await state.ping()  # readiness probes ignore the cooldown and end it when Redis answers
        assert state.healthy
        assert (await get(state, "k"))[1] == "miss"
    finally:
        await state.aclose()


@pytest.mark.unit
async def test_zero_ttl_disables_the_cache(make_settings) -> None:
    state = MemoryState(make_settings(cache_ttl_seconds=0))
    await put(state, "k", {"v": 1})
    assert (await get(state, "k"))[1] == "miss"


@pytest.mark.integration
async def test_a_redis_restart_costs_no_request_and_no_cooldown(
    redis_server, make_settings
) -> None:
    """The pooled connection died with the old process: the first call after the restart must
    reconnect, not fail and send every request to the fallback for REDIS_COOLDOWN_SECONDS."""
    metrics = Metrics()
    state = RedisState(
        make_settings(redis_url=redis_server.url, redis_cooldown_seconds=60), metrics
    )
    try:
        await put(state, "k", {"v": 1})
        assert (await get(state, "k"))[1] == "hit"
        redis_server.kill()
        redis_server.start()
        assert (await get(state, "k"))[1] == "miss"  # a new, empty Redis: not "error"
        assert state.healthy and metrics.dependency_up.labels("redis")._value.get() == 1
    finally:
        await state.aclose()

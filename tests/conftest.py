from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.app import create_app
from agent.config import Settings
from tests.support.gemini_standin import GeminiStandIn
from tests.support.processes import ChromaProcess, RedisProcess

TIERS = ("unit", "integration", "container", "static", "load")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to a tier, so `-m <tier>` selections never silently drop one."""
    untiered = [i.nodeid for i in items if not any(i.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker {TIERS}: {untiered}")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell (GEMINI_API_KEY, REDIS_URL, ...) must not leak into tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("VAIA_API_KEY", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "chroma_path": tmp_path / "chroma",
            "log_level": "warning",
            "llm_provider": "offline",
            "llm_retry_initial_seconds": 0.01,
            "llm_retry_max_seconds": 0.02,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@contextmanager
def running_app(settings: Settings, wait_seed: bool = True) -> Iterator[TestClient]:
    """The app with its lifespan, after the shipped knowledge base has been seeded."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        if wait_seed and settings.seed_on_startup:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = client.app.state.components.seeding  # type: ignore[attr-defined]
                if state not in ("not started", "running"):
                    break
                time.sleep(0.05)
            assert state in ("done", "skipped: collection not empty"), state
        yield client


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def redis_server(redis_process: RedisProcess) -> RedisProcess:
    """A running, empty Redis (restarted if an earlier test killed it)."""
    if not redis_process.ready():
        redis_process.start()
    import redis

    redis.Redis.from_url(redis_process.url).flushall()
    return redis_process


@pytest.fixture(scope="session")
def chroma_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaProcess]:
    proc = ChromaProcess(tmp_path_factory.mktemp("chroma"))
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
def chroma_server(chroma_process: ChromaProcess) -> ChromaProcess:
    """A running Chroma server (restarted if an earlier test stopped it)."""
    if not chroma_process.ready():
        chroma_process.start(timeout=60)
    return chroma_process


@pytest.fixture
def gemini() -> Iterator[GeminiStandIn]:
    standin = GeminiStandIn().start()
    yield standin
    standin.stop()

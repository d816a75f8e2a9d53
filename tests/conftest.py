from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.app import create_app
from agent.config import Settings
from devstack.harness.gemini import GeminiStandIn
from devstack.harness.services import ChromaServer, RedisServer, in_thread
from devstack.harness.services import chroma_server as start_chroma
from devstack.harness.services import redis_server as start_redis

TIERS = ("unit", "integration", "container", "static", "load", "cluster")


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
    monkeypatch.delenv("SECRETS_DIR", raising=False)


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
            # The API's behaviour does not depend on the embedder, and every app seeds the
            # runbooks: with all-MiniLM-L6-v2 that costs seconds each. Tests of the model and of
            # the answers it gives ask for it (offline_embedder="auto").
            "offline_embedder": "hashing",
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
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with start_redis(tmp_path_factory.mktemp("redis")) as proc:
        yield proc


@pytest.fixture
def redis_server(redis_process: RedisServer) -> RedisServer:
    """A running, empty Redis (restarted if an earlier test killed it)."""
    if not redis_process.answering():
        redis_process.start()
    import redis

    redis.Redis.from_url(redis_process.url).flushall()
    return redis_process


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """An empty Redis for tests that need one but never take it away: the CI service container
    when $VAIA_TEST_REDIS_URL names one, else the suite's own redis-server."""
    import os

    import redis

    url = os.environ.get("VAIA_TEST_REDIS_URL") or request.getfixturevalue("redis_server").url
    redis.Redis.from_url(url).flushall()
    return url


@pytest.fixture(scope="session")
def chroma_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with start_chroma(tmp_path_factory.mktemp("chroma")) as proc:
        yield proc


@pytest.fixture
def chroma_server(chroma_process: ChromaServer) -> ChromaServer:
    """A running Chroma server (restarted if an earlier test stopped it)."""
    if not chroma_process.answering():
        chroma_process.start(timeout=60)
    return chroma_process


@pytest.fixture
def gemini() -> Iterator[GeminiStandIn]:
    """The Gemini stand-in in a thread of the test: scripted, recording every request."""
    standin = GeminiStandIn(api_key="test-key-123")
    with in_thread(standin, lifespan="off") as url:
        standin.url = url
        yield standin


# --- container tier -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def docker():
    """The docker client; the container tier fails (never skips) when there is no daemon."""
    from devstack.core.tools import MissingToolError
    from devstack.image.docker import Docker

    try:
        client = Docker()
        client.daemon_ready()
    except MissingToolError as exc:
        pytest.fail(f"the container tier needs docker: {exc}")
    return client


@pytest.fixture(scope="session")
def offline_image(docker) -> str:
    """The runtime image, built the way the README says: `invoke build --offline`."""
    import os
    import re
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "invoke", "build", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(r"^tags: (vaia-agent:sha-[0-9a-f]{7}(?:-dirty)?)", result.stdout, re.M)
    assert match, result.stdout
    assert re.search(r"^size: \d+\.\d MB", result.stdout, re.M), (
        "the build must print the image size"
    )
    return match.group(1)


@pytest.fixture(scope="session")
def dev_image(docker) -> str:
    """The `dev` target (what Tilt builds), on the offline stand-in bases."""
    from devstack.image.build import base_build_args, pip_ca_file

    ca = pip_ca_file()
    tag = "vaia-agent:dev-test"
    docker.build(
        ROOT,
        tags=[tag],
        target="dev",
        build_args=base_build_args(docker, offline=True, log=lambda _: None),
        secrets={"pip_ca": ca} if ca else None,
    )
    return tag


# --- cluster tier -------------------------------------------------------------------------------


def _engine_state() -> str | None:
    """None when the local engine is down, else its node: real or kwok."""
    from devstack.cluster.local import LocalPaths
    from devstack.core.tools import require

    listed = subprocess.run(
        [require("kwokctl"), "get", "clusters"], capture_output=True, text=True, check=False
    ).stdout.split()
    if "vaia-local" not in listed:
        return None
    mode = LocalPaths.default().node_mode
    return mode.read_text().strip() if mode.exists() else "kwok"


def _bring_up(node: str) -> None:
    from tests.support.cluster import invoke

    if _engine_state() not in (None, node):
        invoke("cluster.down", "--engine", "local")
    invoke("cluster.up", "--engine", "local", "--node", node, timeout=1800)


@pytest.fixture(scope="session")
def local_engine() -> Iterator[str]:
    """The local engine with its real node, up the way a user brings it up (`invoke cluster.up
    --engine local`); taken down at the end, unless it was up when the session began. Its
    context."""
    from devstack.core.names import LOCAL_CONTEXT
    from tests.support.cluster import invoke

    was_up = _engine_state() is not None
    _bring_up("real")
    yield LOCAL_CONTEXT
    if not was_up:
        invoke("cluster.down", "--engine", "local")


@pytest.fixture(scope="module")
def kwok_engine() -> Iterator[str]:
    """The local engine with kwok's simulated node instead, for a module's tests; afterwards the
    engine is as it was (the real node back, or down: `local_engine` brings the real one up when
    a test needs it, so a session that starts with this module brings it up once)."""
    from devstack.core.names import LOCAL_CONTEXT
    from tests.support.cluster import invoke

    before = _engine_state()
    _bring_up("kwok")
    yield LOCAL_CONTEXT
    if before == "real":
        _bring_up("real")
    elif before is None:
        invoke("cluster.down", "--engine", "local")

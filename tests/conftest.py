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
    """Every test belongs to a tier, so `-m <tier>` selections never silently drop one. A test
    that takes the kind cluster down runs after every other (bringing it up again for the rest
    would cost a minute and a half of the cluster tier)."""
    untiered = [i.nodeid for i in items if not any(i.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker {TIERS}: {untiered}")
    items.sort(key=lambda item: item.get_closest_marker("takes_the_cluster_down") is not None)


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


@pytest.fixture(scope="session")
def vulnerability_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Trivy cache holding a database that `invoke vulndb` built with Trivy's own builder from
    the shared advisory records ($VAIA_ADVISORIES_DIR, else ../shared/advisories): the gate's
    tests read real findings from it. Without the records, those tests say so and skip."""
    import os
    import sys

    from devstack.release.vulndb import ADVISORIES_SETTING, default_advisories_dir

    source = default_advisories_dir()
    if not source.is_dir():
        pytest.skip(
            f"no advisory records at {source}: set {ADVISORIES_SETTING} to a folder of GHSA "
            "record trees (the gate's vulnerability tests need a database built from them)"
        )
    cache = tmp_path_factory.mktemp("trivy-cache")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "invoke", "vulndb"),
            *("--advisories", str(source), "--cache-dir", str(cache)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = len(list(source.glob("*/advisories/github-reviewed/*/*/GHSA-*/GHSA-*.json")))
    assert f": {records} advisories, the newest published" in done.stdout, done.stdout
    return cache


@pytest.fixture(scope="session")
def standin_services(docker) -> dict[str, str]:
    """The stand-ins of the upstream images the deploy runs, by their upstream names."""
    from devstack.image.compose import standins_by_upstream_name

    return standins_by_upstream_name(docker, lambda _: None)


# --- cluster tier -------------------------------------------------------------------------------


def _kind_cluster_exists() -> bool:
    from devstack.core.names import CLUSTER
    from devstack.core.tools import require

    listed = subprocess.run(
        [require("kind"), "get", "clusters"], capture_output=True, text=True, check=False
    ).stdout.split()
    return CLUSTER in listed


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[str]:
    """kind itself, up the way `invoke up` brings it up on this machine (nothing can be pulled
    here): the node image built with kind's own builder (`invoke cluster.build --node-image`,
    cached by its recipe), then `invoke cluster.up --offline --node-image ...`. Deleted at the end
    (`invoke cluster.down`), unless it was up when the session began. Its context."""
    from devstack.cluster.nodeimage import NODE_IMAGE
    from devstack.core.names import CONTEXT
    from tests.support.cluster import invoke

    was_up = _kind_cluster_exists()
    invoke("cluster.build", "--node-image", timeout=3600)
    invoke("cluster.up", "--offline", "--node-image", NODE_IMAGE, timeout=1800)
    yield CONTEXT
    if was_up and not _kind_cluster_exists():  # taken down by a test: as the session found it
        invoke("cluster.up", "--offline", "--node-image", NODE_IMAGE, timeout=1800)
    elif not was_up:
        invoke("cluster.down")


@pytest.fixture(scope="session")
def released_images(offline_image, vulnerability_db, tmp_path_factory) -> tuple[str, str]:
    """This commit's image, scanned (every image the deploy runs, a real database); and one whose
    process starts but never serves (the mistake of an entrypoint that does something else), so
    its probes never pass (never released, so never scanned). Their local tags."""
    from devstack.core.names import IMAGE, REGISTRY_HOST
    from tests.support.cluster import invoke

    invoke("scan", "--image", offline_image, "--offline", "--cache-dir", str(vulnerability_db))
    context = tmp_path_factory.mktemp("broken")
    (context / "Dockerfile").write_text(
        f"FROM {offline_image}\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "-c", "import time; time.sleep(3600)"]\n'
    )
    broken = f"{REGISTRY_HOST}/{IMAGE}:0.0.2-never-serves"
    subprocess.run(["/usr/bin/docker", "build", "-q", "-t", broken, str(context)], check=True)
    return offline_image, broken


@pytest.fixture
def agent_images(released_images, kind_cluster) -> dict[str, str]:
    """The released images pushed to kind's registry as CI pushes them (`good`, and by digest:
    `digest`; `broken` as it is), again for each test: `invoke cluster.down` in the lifecycle
    tests takes the registry and what it held with it (a push of layers already there is quick)."""
    import re

    from devstack.core.names import IMAGE, REGISTRY_HOST
    from tests.support.cluster import invoke

    offline_image, broken = released_images
    output = invoke("push", "--image", offline_image, "--registry", REGISTRY_HOST)
    digest = re.search(r"^pushed: (\S+)$", output, re.M)
    assert digest, output
    subprocess.run(["/usr/bin/docker", "push", "-q", broken], check=True, capture_output=True)
    return {
        "good": f"{REGISTRY_HOST}/{IMAGE}:{offline_image.rsplit(':', 1)[1]}",
        "digest": digest.group(1),
        "broken": broken,
    }

"""The Compose stack: validated statically, then run for real with the offline stand-in images."""

import os
import subprocess

import httpx
import pytest
import yaml

from devstack.core.tokens import new_token
from devstack.core.tools import command
from devstack.image.compose import Stack, standin_service_images
from tests.conftest import ROOT
from tests.support.processes import free_port, wait_until


@pytest.mark.static
def test_compose_file_is_valid_and_keeps_the_contract() -> None:
    rendered = subprocess.run(
        [*command("compose"), "--project-directory", str(ROOT), "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CHROMA_AUTH_TOKEN": "t" * 43},
    )
    import json

    config = json.loads(rendered.stdout)
    services = config["services"]
    assert set(services) == {"agent", "redis", "chromadb", "chromadb-server"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes beyond loopback"
    agent = services["agent"]
    assert {d: v["condition"] for d, v in agent["depends_on"].items()} == {
        "redis": "service_healthy",
        "chromadb": "service_healthy",
        "chromadb-server": "service_healthy",
    }
    assert (
        agent["environment"]["CHROMA_HOST"] == "chromadb"
        and agent["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        and agent["environment"]["CHROMA_AUTH_TOKEN"] == "t" * 43
    )
    assert agent["read_only"] is True and agent["build"]["target"] == "runtime"
    assert services["redis"]["volumes"][0]["source"] == "redis-data"
    # Chroma publishes no port and shares its proxy's network; only the proxy is `chromadb`.
    server = services["chromadb-server"]
    assert server["volumes"][0]["source"] == "chroma-data"
    assert "ports" not in server and "ports" not in services["chromadb"]
    assert server["network_mode"] == "service:chromadb"
    assert server["command"][server["command"].index("--host") + 1] == "127.0.0.1"
    assert services["chromadb"]["environment"]["CHROMA_AUTH_TOKEN"] == "t" * 43


@pytest.mark.static
def test_compose_refuses_to_start_without_chroma_s_token() -> None:
    done = subprocess.run(
        [*command("compose"), "--project-directory", str(ROOT), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CHROMA_AUTH_TOKEN"},
    )
    assert done.returncode != 0
    assert "CHROMA_AUTH_TOKEN is unset (invoke compose.up makes one)" in done.stderr


@pytest.mark.static
def test_upstream_images_are_pinned_and_overridable() -> None:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())
    images = {name: service["image"] for name, service in raw["services"].items()}
    assert images == {
        "agent": "${AGENT_IMAGE:-vaia-agent:compose}",
        "redis": "${REDIS_IMAGE:-redis:7.4.2-bookworm}",
        "chromadb": "${CHROMA_PROXY_IMAGE:-nginxinc/nginx-unprivileged:1.28.0}",
        "chromadb-server": "${CHROMA_IMAGE:-chromadb/chroma:1.5.9}",
    }


@pytest.mark.static
def test_env_file_is_ignored_and_example_shipped() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert (ROOT / ".env.example").exists()


@pytest.fixture(scope="module")
def stack(docker, offline_image, tmp_path_factory):
    """`invoke compose.up --offline`'s steps on free loopback ports, under a throwaway project."""
    images = {"AGENT_IMAGE": offline_image, **standin_service_images(docker)}
    ports = {"AGENT_PORT": str(free_port()), "REDIS_PORT": str(free_port())}
    token = {"CHROMA_AUTH_TOKEN": new_token()}
    stack = Stack(
        ROOT,
        project=f"vaiatest{ports['AGENT_PORT']}",
        env={**images, **ports, **token},
        docker=docker,
    )
    try:
        stack.up(wait_seconds=240)
        yield stack
    finally:
        stack.down(volumes=True)
        leftovers = docker.run(
            ["ps", "-a", "--filter", f"label=com.docker.compose.project={stack.project}", "-q"]
        ).stdout
        volumes = docker.run(
            ["volume", "ls", "--filter", f"label=com.docker.compose.project={stack.project}", "-q"]
        ).stdout
        assert leftovers.strip() == "" and volumes.strip() == "", (
            "compose down left something behind"
        )


def agent_url(stack: Stack) -> str:
    return stack.urls()["agent"]


def _healthy(stack: Stack, service: str) -> bool:
    return any(s["Service"] == service and s.get("Health") == "healthy" for s in stack.ps())


def _inside(stack: Stack, service: str, script: str) -> str:
    """What a shell in `service`'s container prints (bash: /dev/tcp, no curl needed)."""
    return stack.compose(["exec", "-T", service, "bash", "-c", script], check=False).stdout


def _status(stack: Stack, service: str, host: str, port: int, request: str) -> str:
    """The status line of one HTTP request sent from `service`'s container."""
    script = f"exec 3<>/dev/tcp/{host}/{port} || exit 0; printf '{request}' >&3; head -n1 <&3"
    return _inside(stack, service, script).strip()


@pytest.mark.container
def test_chroma_answers_only_the_agent_s_token(stack) -> None:
    """From the Redis container, another workload on the stack's network: the heartbeat
    answers, a collection cannot be created without the token or with a wrong one, and Chroma's
    own port is not reachable (it listens on the proxy's loopback)."""
    create = (
        "POST /api/v2/tenants/default_tenant/databases/default_database/collections HTTP/1.0\\r\\n"
        "Content-Type: application/json\\r\\nContent-Length: 12\\r\\n{auth}\\r\\n"
        '{{"name":"x"}}'
    )
    heartbeat = "GET /api/v2/heartbeat HTTP/1.0\\r\\n\\r\\n"
    assert " 200 " in _status(stack, "redis", "chromadb", 8000, heartbeat)
    assert " 401 " in _status(stack, "redis", "chromadb", 8000, create.format(auth=""))
    wrong = create.format(auth="Authorization: Bearer " + "w" * 43 + "\\r\\n")
    assert " 401 " in _status(stack, "redis", "chromadb", 8000, wrong)
    assert _status(stack, "redis", "chromadb", 8001, heartbeat) == ""


@pytest.mark.container
def test_stack_is_healthy_and_wired(stack) -> None:
    states = {s["Service"]: (s["State"], s.get("Health")) for s in stack.ps()}
    services = ("agent", "redis", "chromadb", "chromadb-server")
    assert states == {name: ("running", "healthy") for name in services}
    ready = httpx.get(agent_url(stack) + "/ready").json()
    assert ready["status"] == "ready"
    assert (
        ready["checks"]["chromadb"]["mode"] == "server"
        and ready["checks"]["redis"]["backend"] == "redis"
    )


@pytest.mark.container
def test_ingest_ask_restart_chroma_and_the_document_survives(stack) -> None:
    base = agent_url(stack)
    doc = {
        "id": "oncall-handover",
        "title": "On-call handover",
        "text": "## Handover\n\nThe on-call handover happens every Tuesday at 09:30 UTC in the #ops-handover channel.",
    }
    assert (
        httpx.post(base + "/v1/knowledge/documents", json={"documents": [doc]}).status_code == 200
    )
    question = {"query": "When is the on-call handover?"}
    body = httpx.post(base + "/v1/agent/infer", json=question).json()
    assert "Tuesday at 09:30 UTC" in body["answer"]
    assert any(s["document_id"] == "oncall-handover" and s["cited"] for s in body["sources"])

    stack.compose(["restart", "chromadb-server"])
    # Chroma's own heartbeat: `compose restart` returns before the server listens, and /ready
    # may still stand on the ingest's success a moment ago (RECENT_SUCCESS_SECONDS).
    wait_until(lambda: _healthy(stack, "chromadb-server"), 90, "chroma back")
    wait_until(lambda: httpx.get(base + "/ready").json()["status"] == "ready", 30, "agent ready")
    again = httpx.post(
        base + "/v1/agent/infer", json={"query": "When is the on-call handover? (after restart)"}
    ).json()
    assert again["degraded"] == [] and "Tuesday at 09:30 UTC" in again["answer"]


@pytest.mark.container
def test_redis_stopped_the_agent_still_answers(stack) -> None:
    base = agent_url(stack)
    stack.compose(["stop", "redis"])
    try:
        response = httpx.post(
            base + "/v1/agent/infer", json={"query": "How do I roll back a Deployment?"}, timeout=30
        )
        assert response.status_code == 200
        assert "kubectl rollout undo" in response.json()["answer"]
        ready = httpx.get(base + "/ready").json()
        assert ready["status"] == "degraded" and ready["down"] == ["redis"]
    finally:
        stack.compose(["start", "redis"])
        wait_until(lambda: httpx.get(base + "/ready").json()["status"] == "ready", 60, "redis back")

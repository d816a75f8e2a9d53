"""The Compose stack: validated statically, then run for real with the offline stand-in images."""

import subprocess

import httpx
import pytest
import yaml

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
    )
    import json

    config = json.loads(rendered.stdout)
    services = config["services"]
    assert set(services) == {"agent", "redis", "chromadb"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes beyond loopback"
    agent = services["agent"]
    assert {d: v["condition"] for d, v in agent["depends_on"].items()} == {
        "redis": "service_healthy",
        "chromadb": "service_healthy",
    }
    assert (
        agent["environment"]["CHROMA_HOST"] == "chromadb"
        and agent["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    )
    assert agent["read_only"] is True and agent["build"]["target"] == "runtime"
    assert services["redis"]["volumes"][0]["source"] == "redis-data"
    assert services["chromadb"]["volumes"][0]["source"] == "chroma-data"


@pytest.mark.static
def test_upstream_images_are_pinned_and_overridable() -> None:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())
    images = {name: service["image"] for name, service in raw["services"].items()}
    assert images == {
        "agent": "${AGENT_IMAGE:-vaia-agent:compose}",
        "redis": "${REDIS_IMAGE:-redis:7.4.2-bookworm}",
        "chromadb": "${CHROMA_IMAGE:-chromadb/chroma:1.5.9}",
    }


@pytest.mark.static
def test_env_file_is_ignored_and_example_shipped() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert (ROOT / ".env.example").exists()


@pytest.fixture(scope="module")
def stack(docker, offline_image, tmp_path_factory):
    """`invoke compose.up --offline`'s steps on free loopback ports, under a throwaway project."""
    images = {"AGENT_IMAGE": offline_image, **standin_service_images(docker)}
    ports = {
        "AGENT_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "CHROMA_PUBLISHED_PORT": str(free_port()),
    }
    stack = Stack(
        ROOT, project=f"vaiatest{ports['AGENT_PORT']}", env={**images, **ports}, docker=docker
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


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.container
def test_stack_is_healthy_and_wired(stack) -> None:
    states = {s["Service"]: (s["State"], s.get("Health")) for s in stack.ps()}
    assert states == {name: ("running", "healthy") for name in ("agent", "redis", "chromadb")}
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

    stack.compose(["restart", "chromadb"])
    # Chroma's own heartbeat: `compose restart` returns before the server listens, and /ready
    # may still stand on the ingest's success a moment ago (RECENT_SUCCESS_SECONDS).
    wait_until(lambda: _answers(stack.urls()["chromadb"]), 90, "chroma back")
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

"""The Tiltfile, run by the real Tilt (`tilt ci`, the pinned build) on real kind nodes, exactly as
`inner-loop.yml` runs it (`invoke up --ci`, with `--offline --node-image` here): today's brings every
auto-started resource up; the first round's deadlocks."""

import json

import httpx
import pytest

from devstack.cluster.cli import ClusterCli
from devstack.cluster.kind import port_forward
from devstack.core.names import CONTEXT, IMAGE, NAMESPACE
from devstack.core.net import free_port
from devstack.core.runner import Runner
from tests.support.cluster import (
    ROOT,
    UP,
    checkout_copy,
    fresh_namespace,
    get,
    invoke,
    kubectl,
    wait_for,
)

pytestmark = pytest.mark.cluster


def test_tilt_ci_brings_every_resource_up_on_kind(kind_cluster) -> None:
    fresh_namespace()
    output = invoke(*UP, timeout=1500)
    assert "SUCCESS. All workloads are healthy." in output
    pods = get("-n", NAMESPACE, "get", "pods")["items"]
    owners = {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in pods}
    assert owners == {"vaia-agent", "redis", "chromadb"}
    for pod in pods:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
        assert ready == "True", pod["metadata"]["name"]
    # The dev overlay's two replicas (the HPA's minimum), from the image Tilt pushed to the
    # local registry.
    agents = wait_for(lambda: agent_pods(2), 90, "the HPA's second replica")
    assert {p["spec"]["containers"][0]["image"].rsplit(":", 1)[0] for p in agents} == {
        "localhost:5001/vaia-agent"
    }


def test_the_agent_tilt_brought_up_answers_from_the_chroma_server_in_the_cluster(
    kind_cluster,
) -> None:
    """Real pods: through a port-forward to the Service, the agent answers with a cited answer,
    retrieved from the Chroma StatefulSet and cached in the Redis one (what its /ready says)."""
    if not agent_pods(2):
        fresh_namespace()
        invoke(*UP, timeout=1500)
    with port_forward(ClusterCli(Runner(), CONTEXT), IMAGE, free_port()) as url:
        ready = httpx.get(url + "/ready", timeout=10).json()
        assert ready["checks"]["chromadb"]["status"] == "up"
        assert ready["checks"]["redis"]["status"] == "up"

        def answered() -> dict | None:
            body = httpx.post(
                url + "/v1/agent/infer",
                json={"query": "How do I roll back a Deployment?"},
                timeout=30,
            ).json()
            return None if "knowledge_base_loading" in body["degraded"] else body

        body = wait_for(answered, 120, "the knowledge base seeded in the cluster's Chroma")
    assert body["degraded"] == [] and body["provider"] == "offline"
    assert any(s["cited"] and s["document_id"] == "runbook/rollbacks" for s in body["sources"])
    assert "kubectl rollout undo" in body["answer"]


PROBE = """
collections=http://chromadb:8000/api/v2/tenants/default_tenant/databases/default_database/collections
status() { wget -q -S -O /dev/null "$@" 2>&1 | sed -n 's/^ *HTTP\\/1\\.[01] //p' | head -n1; }
echo "heartbeat: $(status http://chromadb:8000/api/v2/heartbeat)"
echo "no token: $(status --header 'Content-Type: application/json' --post-data '{"name":"x"}' $collections)"
echo "wrong token: $(status --header 'Authorization: Bearer wrong-wrong-wrong-wrong-wrong-wrong' --header 'Content-Type: application/json' --post-data '{"name":"x"}' $collections)"
echo "server port: $(status http://$CHROMA_POD:8001/api/v2/heartbeat || true)"
"""


def test_chroma_refuses_a_pod_that_is_not_the_agent(kind_cluster) -> None:
    """CVE-2026-45829 needs one unauthenticated request to Chroma's collections endpoint: from a
    pod in the agent's own namespace, only the heartbeat answers; creating a collection without
    the agent's token, or with a wrong one, is refused by the proxy, and Chroma's own port is not
    reachable at all (it listens on the pod's loopback)."""
    if not agent_pods(2):
        fresh_namespace()
        invoke(*UP, timeout=1500)
    restricted = {
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": "busybox",
                    "command": ["sh", "-c", PROBE],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        }
    }
    chroma = get("-n", NAMESPACE, "get", "pod", "chromadb-0")["status"]["podIP"]
    restricted["spec"]["containers"][0]["env"] = [{"name": "CHROMA_POD", "value": chroma}]
    done = kubectl(
        "-n", NAMESPACE, "run", "not-the-agent", "--rm", "-i", "--restart=Never",
        "--image=busybox", f"--overrides={json.dumps(restricted)}", "--pod-running-timeout=120s",
    )  # fmt: skip
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["heartbeat"].startswith("200"), done.stdout
    assert lines["no token"].startswith("401"), done.stdout
    assert lines["wrong token"].startswith("401"), done.stdout
    assert lines["server port"] == "", done.stdout  # connection refused: nothing answers


def agent_pods(count: int) -> list:
    pods = get("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=vaia-agent")["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return running if len(running) == count else []


def test_the_secret_tilt_deploys_carries_no_value_in_annotations_or_managed_fields(
    kind_cluster, monkeypatch
) -> None:
    fresh_namespace()
    monkeypatch.setenv("GEMINI_API_KEY", "k-tilt-secret-value-42")
    invoke(*UP, timeout=1500)
    secret = get("-n", NAMESPACE, "get", "secret", "vaia-agent-secrets", "--show-managed-fields")
    metadata = str(secret["metadata"])
    assert "k-tilt-secret-value-42" not in metadata
    assert "kubectl.kubernetes.io/last-applied-configuration" not in secret["metadata"].get(
        "annotations", {}
    )
    assert {m["manager"] for m in secret["metadata"]["managedFields"]} == {"tilt-vaia"}


def test_tilt_ci_fails_on_the_first_round_tiltfile(kind_cluster, tmp_path) -> None:
    """The first round's Tiltfile, with only what the machine around it changed since brought up
    to date (the secrets file it wrote): its namespace is an object of
    vaia-agent, which waits for redis and chromadb, which need the namespace."""
    checkout = checkout_copy(tmp_path / "checkout")
    first_round = (ROOT / "tests" / "fixtures" / "Tiltfile.first-round").read_text()
    first_round = first_round.replace(
        "local('python3 -m devstack.secrets k8s/base/secrets.env', quiet=True, echo_off=True)", ""
    )
    (checkout / "Tiltfile").write_text(first_round)
    fresh_namespace()
    output = invoke(*UP, cwd=checkout, check=False, timeout=900)
    assert not output.startswith("exit 0"), output[-3000:]
    assert 'namespaces "vaia" not found' in output, output[-3000:]

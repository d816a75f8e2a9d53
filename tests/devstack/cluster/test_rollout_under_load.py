"""A failed rollout under load, on kind's nodes: while a 30-second load runs through a
port-forward to the agent's Service (as `invoke loadtest` reaches a cluster), an image that never
becomes ready is deployed; `invoke deploy` undoes it, the previous revision is
what runs, and not one request failed: `maxUnavailable: 0` kept every old pod serving, as the
PodDisruptionBudget's status shows throughout."""

import json
import re
import threading
import time

import pytest

from devstack.core.names import IMAGE, NAMESPACE
from tests.support.cluster import fresh_namespace, get, invoke, kubectl, wait_for

pytestmark = pytest.mark.cluster


def settled() -> bool:
    """Every agent pod answers /ready with nothing degraded (the runbooks seeded): a load that
    starts earlier meets the seeding, not the rollout. And the Deployment's status counts them
    ready (it lags the pods: a watch started at once once read 1 of 2)."""
    status = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")["status"]
    if status.get("readyReplicas", 0) < 2:
        return False
    pods = get("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={IMAGE}")["items"]
    for pod in pods:
        # Through the API server's pod proxy: the pods' addresses are inside kind's nodes.
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}:8080/proxy/ready"
        done = kubectl("get", "--raw", path, check=False)
        if done.returncode != 0 or json.loads(done.stdout).get("degraded"):
            return False
    return len(pods) >= 2


class Watch(threading.Thread):
    """The Deployment's ready replicas and the PDB's status, every half second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ready: list[int] = []
        self.healthy: list[tuple[int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            status = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")["status"]
            self.ready.append(status.get("readyReplicas", 0))
            pdb = get("-n", NAMESPACE, "get", f"pdb/{IMAGE}")["status"]
            self.healthy.append((pdb.get("currentHealthy", 0), pdb.get("desiredHealthy", 0)))
            time.sleep(0.5)


def test_a_failed_rollout_under_load_is_undone_and_no_request_fails(agent_images, tmp_path) -> None:
    fresh_namespace()
    first = invoke("deploy", "--image", agent_images["good"], "--overlay", "ci")
    assert "rollout complete" in first
    wait_for(settled, 180, "every agent pod ready with its knowledge base seeded")
    watch = Watch()
    watch.start()
    load_result: list[str] = []
    # A load this 2-core machine carries with the rollout beside it (at 10 users, ingestions
    # sometimes met a Chroma too starved to answer within CHROMA_TIMEOUT_SECONDS: 503s of
    # capacity, not of the rollout).
    # Through a port-forward to the Service, as `invoke loadtest` reaches a cluster.
    argv = ["loadtest", "--no-hpa", "--users", "6"]
    argv += ["--duration", "30s", "--report-dir", str(tmp_path)]
    load = threading.Thread(
        target=lambda: load_result.append(invoke(*argv, check=False, timeout=300))
    )
    load.start()
    time.sleep(3)
    failed = invoke(
        "deploy", "--image", agent_images["broken"], "--overlay", "ci",
        "--timeout", "20s", check=False, timeout=300,
    )  # fmt: skip
    load.join(timeout=300)
    watch.stop.set()
    watch.join(timeout=10)

    assert "rollout failed: undoing it (back to revision 1)" in failed, failed[-2000:]
    deployment = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")
    assert {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]} == {
        agent_images["good"]
    }
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    summary = (tmp_path / "summary.md").read_text()
    requests, failures = re.search(r"Requests: (\d+), failures: (\d+)", summary).groups()
    failures_csv = tmp_path / "locust_failures.csv"
    which = failures_csv.read_text() if failures_csv.exists() else ""
    assert int(requests) > 100 and int(failures) == 0, summary + which
    # Every old pod kept serving while the new one never became ready.
    assert min(watch.ready) >= 2, watch.ready
    assert all(current >= desired for current, desired in watch.healthy), watch.healthy

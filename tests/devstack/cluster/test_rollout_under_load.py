"""A failed rollout under load, on the local engine's real node: while a 30-second load runs
through the agent's Service (its ClusterIP, which kube-proxy balances over the ready pods), an
image that never becomes ready is deployed; `invoke deploy` undoes it, the previous revision is
what runs, and not one request failed: `maxUnavailable: 0` kept every old pod serving, as the
PodDisruptionBudget's status shows throughout."""

import re
import subprocess
import threading
import time

import httpx
import pytest

from devstack.core.names import IMAGE, NAMESPACE, REGISTRY_HOST
from tests.support.cluster import fresh_namespace, get, invoke, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def images(offline_image, vulnerability_db, local_engine, tmp_path_factory) -> dict[str, str]:
    """This commit's image (scanned and pushed as CI does), and one whose process starts but
    never serves (the mistake of an entrypoint that does something else), so that its probes
    never pass (pushed as it is: it is never released)."""
    invoke("scan", "--image", offline_image, "--offline", "--cache-dir", str(vulnerability_db))
    invoke("push", "--image", offline_image, "--registry", REGISTRY_HOST)
    good = f"{REGISTRY_HOST}/{IMAGE}:{offline_image.rsplit(':', 1)[1]}"
    context = tmp_path_factory.mktemp("broken")
    (context / "Dockerfile").write_text(
        f"FROM {offline_image}\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "-c", "import time; time.sleep(3600)"]\n'
    )
    broken = f"{REGISTRY_HOST}/{IMAGE}:0.0.2-never-serves"
    subprocess.run(["docker", "build", "-q", "-t", broken, str(context)], check=True)
    subprocess.run(["docker", "push", "-q", broken], check=True, capture_output=True)
    return {"good": good, "broken": broken}


def settled() -> bool:
    """Every agent pod answers /ready with nothing degraded (the runbooks seeded): a load that
    starts earlier meets the seeding, not the rollout."""
    pods = get("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={IMAGE}")["items"]
    for pod in pods:
        ip = pod["status"].get("podIP")
        try:
            ready = httpx.get(f"http://{ip}:8080/ready", timeout=3).json() if ip else None
        except httpx.HTTPError:
            return False
        if not ready or ready.get("degraded"):
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


def test_a_failed_rollout_under_load_is_undone_and_no_request_fails(images, tmp_path) -> None:
    fresh_namespace()
    first = invoke(
        "deploy", "--image", images["good"], "--overlay", "ci", "--context", "vaia-local"
    )
    assert "rollout complete" in first
    service = get("-n", NAMESPACE, "get", f"service/{IMAGE}")["spec"]["clusterIP"]
    wait_for(settled, 180, "every agent pod ready with its knowledge base seeded")
    watch = Watch()
    watch.start()
    load_result: list[str] = []
    # A load this 2-core machine carries with the rollout beside it (at 10 users, ingestions
    # sometimes met a Chroma too starved to answer within CHROMA_TIMEOUT_SECONDS: 503s of
    # capacity, not of the rollout).
    argv = ["loadtest", "--host", f"http://{service}", "--no-hpa", "--users", "6"]
    argv += ["--duration", "30s", "--report-dir", str(tmp_path)]
    load = threading.Thread(
        target=lambda: load_result.append(invoke(*argv, check=False, timeout=300))
    )
    load.start()
    time.sleep(3)
    failed = invoke(
        "deploy", "--image", images["broken"], "--overlay", "ci", "--context", "vaia-local",
        "--timeout", "20s", check=False, timeout=300,
    )  # fmt: skip
    load.join(timeout=300)
    watch.stop.set()
    watch.join(timeout=10)

    assert "rollout failed: undoing it (back to revision 1)" in failed, failed[-2000:]
    deployment = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")
    assert {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]} == {
        images["good"]
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

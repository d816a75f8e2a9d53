"""`invoke deploy` against the local engine's real API server, on kwok's simulated node: the
image built, scanned and pushed to the local registry the way CI does it; the real Deployment
controller rolls it out and `kubectl rollout status` waits for real; a rollout that cannot become
ready (on the simulated node, an image whose tag ends in `-unready` never does:
devstack/cluster/simulated.py's stages) is
undone by the deploy, and the previous revision is what runs; a first deploy that fails says
there is nothing to go back to; no annotation or managed field carries a Secret's value."""

import re
import subprocess

import httpx
import pytest
import yaml

from devstack.cluster.simulated import UNREADY_TAG_SUFFIX
from devstack.core.names import IMAGE, KUBERNETES_VERSION, NAMESPACE, REGISTRY_HOST
from tests.support.cluster import fresh_namespace, get, invoke, kubectl

pytestmark = pytest.mark.cluster
KEY = "k-deploy-secret-value-77"


# First in the module: it takes the engine down, and with it the registry's images.
def test_down_and_up_are_idempotent_and_up_gives_what_tilt_and_the_hpa_need(kwok_engine) -> None:
    # With kwok's node (up in seconds): the real node's up runs in every session (local_engine).
    invoke("cluster.down", "--engine", "local")
    again = invoke("cluster.down", "--engine", "local")
    assert "deleted" not in again  # nothing left to delete
    first = invoke("cluster.up", "--engine", "local", "--node", "kwok")
    assert "created (kwokctl, binary runtime, a kwok node)" in first
    second = invoke("cluster.up", "--engine", "local", "--node", "kwok")
    assert "already exists" in second and "created (kwokctl" not in second

    version = get("version")["serverVersion"]["gitVersion"]
    assert version == f"v{KUBERNETES_VERSION}"
    hosting = get("-n", "kube-public", "get", "configmap", "local-registry-hosting")
    assert yaml.safe_load(hosting["data"]["localRegistryHosting.v1"])["host"] == REGISTRY_HOST
    service = get("get", "apiservice", "v1beta1.metrics.k8s.io")
    assert {c["type"]: c["status"] for c in service["status"]["conditions"]}["Available"] == "True"
    classes = get("get", "storageclass")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == ["standard"]
    assert httpx.get(f"http://{REGISTRY_HOST}/v2/", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def pushed(offline_image, vulnerability_db, kwok_engine) -> dict[str, str]:
    """This commit's image scanned (the gate with a real vulnerability database, with every
    image the deploy runs) and pushed; and the same image under a tag that never becomes ready."""
    invoke("scan", "--image", offline_image, "--offline", "--cache-dir", str(vulnerability_db))
    output = invoke("push", "--image", offline_image, "--registry", REGISTRY_HOST)
    digest = re.search(r"^pushed: (\S+)$", output, re.M).group(1)
    tag = offline_image.rsplit(":", 1)[1]
    unready = f"vaia-agent:0.0.1{UNREADY_TAG_SUFFIX}"
    subprocess.run(["docker", "tag", offline_image, unready], check=True)
    invoke("push", "--image", unready, "--registry", REGISTRY_HOST)
    return {
        "good": f"{REGISTRY_HOST}/{IMAGE}:{tag}",
        "digest": digest,
        "unready": f"{REGISTRY_HOST}/{unready}",
    }


def deploy(image: str, *flags: str, check: bool = True) -> str:
    """A deploy expected to fail waits 20 s for its rollout (kwok's pods are ready in one or
    two), one expected to pass up to 60 s."""
    return invoke(
        "deploy", "--image", image, "--context", "vaia-local",
        "--timeout", "60s" if check else "20s", *flags, check=check, timeout=600,
    )  # fmt: skip


def running_images() -> set[str]:
    deployment = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")
    return {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_a_deploy_rolls_out_for_real_and_a_failed_one_is_undone(pushed, monkeypatch) -> None:
    fresh_namespace()
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    first = deploy(pushed["good"], "--overlay", "ci")
    assert "rollout complete" in first
    status = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")["status"]
    assert status["readyReplicas"] == status["replicas"] >= 1

    failed = deploy(pushed["unready"], "--overlay", "ci", check=False)
    assert not failed.startswith("exit 0")
    assert "rollout failed: undoing it (back to revision 1)" in failed
    assert (
        f"error: rollout of {pushed['unready']} failed and was rolled back to revision 1" in failed
    )
    assert running_images() == {pushed["good"]}
    status = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")["status"]
    assert status["readyReplicas"] == status["replicas"]
    assert status.get("unavailableReplicas") is None

    secret = get("-n", NAMESPACE, "get", "secret", "vaia-agent-secrets", "--show-managed-fields")
    assert KEY not in str(secret["metadata"])
    assert "kubectl.kubernetes.io/last-applied-configuration" not in secret["metadata"].get(
        "annotations", {}
    )
    assert {m["manager"] for m in secret["metadata"]["managedFields"]} == {"vaia-deploy"}
    described = kubectl("-n", NAMESPACE, "describe", "secret", "vaia-agent-secrets").stdout
    assert KEY not in described


def test_a_failed_first_deploy_says_there_is_no_earlier_revision(pushed) -> None:
    fresh_namespace()
    failed = deploy(pushed["unready"], "--overlay", "ci", check=False)
    assert not failed.startswith("exit 0")
    assert "this was the first deploy of deployment/vaia-agent to vaia-local" in failed
    assert "there is no earlier revision to go back to" in failed
    assert "undoing it" not in failed


def test_the_dev_and_prod_overlays_deploy_too(pushed) -> None:
    fresh_namespace()
    assert "rollout complete" in deploy(pushed["good"], "--overlay", "dev")
    refused = deploy(pushed["digest"], "--overlay", "prod", "--allow-offline", check=False)
    assert "refusing to deploy overlay prod to context 'vaia-local'" in refused
    fresh_namespace()
    done = deploy(pushed["digest"], "--overlay", "prod", "--allow-offline", "--force")
    assert "rollout complete" in done
    assert running_images() == {pushed["digest"]}
    hpa = get("-n", NAMESPACE, "get", f"hpa/{IMAGE}")
    assert hpa["spec"]["minReplicas"] == 3

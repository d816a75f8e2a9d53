"""`invoke deploy` on kind: the image built, scanned and pushed to the local registry the way CI
does it; the real Deployment controller rolls it out on kind's nodes and `kubectl rollout status`
waits for real; a rollout that cannot become ready (an image whose process never serves) is undone
by the deploy, and the previous revision is what runs; a first deploy that fails says there is
nothing to go back to; no annotation or managed field carries a Secret's value."""

import pytest

from devstack.core.names import IMAGE, NAMESPACE
from tests.support.cluster import fresh_namespace, get, invoke, kubectl

pytestmark = pytest.mark.cluster
KEY = "k-deploy-secret-value-77"


def deploy(image: str, *flags: str, check: bool = True) -> str:
    """A deploy expected to fail waits 20 s for its rollout, one expected to pass up to 240 s
    (the stores start beside the agents in a fresh namespace)."""
    return invoke(
        "deploy", "--image", image,
        "--timeout", "240s" if check else "20s", *flags, check=check, timeout=900,
    )  # fmt: skip


def running_images() -> set[str]:
    deployment = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")
    return {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_a_deploy_rolls_out_for_real_and_a_failed_one_is_undone(agent_images, monkeypatch) -> None:
    fresh_namespace()
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    first = deploy(agent_images["good"], "--overlay", "ci")
    assert "rollout complete" in first
    status = get("-n", NAMESPACE, "get", f"deployment/{IMAGE}")["status"]
    assert status["readyReplicas"] == status["replicas"] >= 1

    failed = deploy(agent_images["broken"], "--overlay", "ci", check=False)
    assert not failed.startswith("exit 0")
    assert "rollout failed: undoing it (back to revision 1)" in failed
    assert (
        f"error: rollout of {agent_images['broken']} failed and was rolled back to revision 1"
        in failed
    )
    assert running_images() == {agent_images["good"]}
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


def test_a_failed_first_deploy_says_there_is_no_earlier_revision(agent_images) -> None:
    fresh_namespace()
    failed = deploy(agent_images["broken"], "--overlay", "ci", check=False)
    assert not failed.startswith("exit 0")
    assert "this was the first deploy of deployment/vaia-agent to kind-vaia" in failed
    assert "there is no earlier revision to go back to" in failed
    assert "undoing it" not in failed


def test_the_dev_and_prod_overlays_deploy_too(agent_images) -> None:
    fresh_namespace()
    assert "rollout complete" in deploy(agent_images["good"], "--overlay", "dev")
    refused = deploy(agent_images["digest"], "--overlay", "prod", "--allow-offline", check=False)
    assert "refusing to deploy overlay prod to context 'kind-vaia'" in refused
    fresh_namespace()
    done = deploy(agent_images["digest"], "--overlay", "prod", "--allow-offline", "--force")
    assert "rollout complete" in done
    assert running_images() == {agent_images["digest"]}
    hpa = get("-n", NAMESPACE, "get", f"hpa/{IMAGE}")
    assert hpa["spec"]["minReplicas"] == 3

"""`invoke cluster.up --engine local` for real: kwokctl runs the pinned control plane, and the
cluster has what `invoke cluster.up` gives kind (registry, KEP-1755 ConfigMap, metrics-server's
APIService, a default StorageClass); up and down are idempotent; the real PodSecurity admission
enforces `restricted` in the namespace."""

import httpx
import pytest
import yaml

from devstack.core.names import KUBERNETES_VERSION, NAMESPACE, REGISTRY_HOST
from tests.support.cluster import ROOT, fresh_namespace, get, invoke, kubectl

pytestmark = pytest.mark.cluster


def test_down_and_up_are_idempotent_and_up_gives_what_tilt_and_the_hpa_need(local_engine) -> None:
    invoke("cluster.down", "--engine", "local")
    again = invoke("cluster.down", "--engine", "local")
    assert "deleted" not in again  # nothing left to delete
    first = invoke("cluster.up", "--engine", "local")
    assert "created (kwokctl, binary runtime, a real node)" in first
    second = invoke("cluster.up", "--engine", "local")
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


def test_pod_security_restricted_refuses_a_privileged_pod_at_apply_time(local_engine) -> None:
    fresh_namespace()
    kubectl("apply", "-f", str(ROOT / "k8s" / "base" / "namespace.yaml"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:v1.32"' in refused.stderr
    assert "privileged" in refused.stderr
    listed = kubectl("-n", NAMESPACE, "get", "pod", "privileged", "--ignore-not-found")
    assert listed.stdout.strip() == ""

"""`invoke cluster.up` and `cluster.down` on kind, for real: up gives what Tilt and the HPA need;
a second up changes nothing and puts back what was lost (a stopped registry is started, not
recreated; a node's lost registry settings are written again); down leaves no container, network
or registry behind, and a second down does nothing; the real PodSecurity admission enforces
`restricted` in the namespace."""

import httpx
import pytest
import yaml

from devstack.core.names import KUBERNETES_VERSION, NAMESPACE, REGISTRY, REGISTRY_HOST
from devstack.host.privileged import missing_capabilities
from tests.support.cluster import ROOT, UP, fresh_namespace, get, invoke, kubectl

pytestmark = pytest.mark.cluster
CLUSTER_UP = ("cluster.up", *UP[2:])  # --offline --node-image ...


def docker(*args: str) -> str:
    import subprocess

    from devstack.core.tools import command

    done = subprocess.run([*command("docker"), *args], capture_output=True, text=True, check=False)
    return done.stdout


def test_up_gives_what_tilt_and_the_hpa_need(kind_cluster) -> None:
    assert get("version")["serverVersion"]["gitVersion"] == f"v{KUBERNETES_VERSION}"
    nodes = get("get", "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["vaia-control-plane", "vaia-worker"]
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True" and node["status"]["nodeInfo"]["containerRuntimeVersion"]
    hosting = get("-n", "kube-public", "get", "configmap", "local-registry-hosting")
    assert yaml.safe_load(hosting["data"]["localRegistryHosting.v1"]) == {
        "host": REGISTRY_HOST,
        "help": "https://kind.sigs.k8s.io/docs/user/local-registry/",
    }
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
    # What this host needed beyond a laptop, and only that (kind_config.py).
    config = docker("exec", "vaia-worker", "cat", "/etc/containerd/config.toml")
    needed = "CAP_SYS_RESOURCE" in missing_capabilities()
    assert ("restrict_oom_score_adj = true" in config) == needed


def test_up_again_changes_nothing_and_puts_back_what_was_lost(kind_cluster) -> None:
    again = invoke(*CLUSTER_UP)
    assert (
        "cluster vaia already exists" in again and f"registry {REGISTRY} already running" in again
    )
    assert "created" not in again and "through kind-registry" not in again
    docker("stop", REGISTRY)
    docker("exec", "vaia-worker", "rm", "/etc/containerd/certs.d/localhost:5001/hosts.toml")
    repaired = invoke(*CLUSTER_UP)
    assert f"registry {REGISTRY} started" in repaired
    assert "vaia-worker: localhost:5001 through kind-registry" in repaired
    assert "vaia-control-plane: localhost:5001" not in repaired


def test_pod_security_restricted_refuses_a_privileged_pod_at_apply_time(kind_cluster) -> None:
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


@pytest.mark.takes_the_cluster_down  # run last, nothing after it needs the cluster
def test_down_leaves_nothing_behind_and_twice_does_nothing(kind_cluster) -> None:
    invoke("cluster.down")
    assert "vaia-" not in docker("ps", "-a", "--format", "{{.Names}}")
    assert REGISTRY not in docker("ps", "-a", "--format", "{{.Names}}")
    assert "kind" not in docker("network", "ls", "--format", "{{.Name}}").split()
    again = invoke("cluster.down")
    assert "deleted" not in again and "removed" not in again

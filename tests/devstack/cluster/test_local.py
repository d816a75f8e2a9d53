"""`invoke cluster.up --engine local` for real: kwokctl runs the pinned control plane, and the
cluster has what `invoke cluster.up` gives kind (registry, KEP-1755 ConfigMap, metrics-server's
APIService, a default StorageClass; up and down are idempotent: test_deploy_on_the_api_server.py,
with kwok's node); the real PodSecurity admission enforces `restricted` in the namespace; a
kubelet that exits at start-up is started again."""

import pytest
import yaml

from devstack.core.names import NAMESPACE
from tests.support.cluster import ROOT, fresh_namespace, kubectl, wait_for

pytestmark = pytest.mark.cluster


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


def test_the_kubelet_exits_when_containerd_does_not_answer_yet(local_engine, tmp_path) -> None:
    """Why `cluster.up` starts again what exited: the kubelet's CRI check fails fast, and
    kwokctl restarts nothing (if a kubelet of the pinned build ever waits, start_exited can go)."""
    from devstack.cluster import node
    from devstack.cluster.local import LocalPaths
    from devstack.core.runner import Runner

    config = yaml.safe_load(node.NodePaths().kubelet_config.read_text())
    config["containerRuntimeEndpoint"] = f"unix://{tmp_path / 'nothing.sock'}"
    config.pop("imageServiceEndpoint", None)
    (tmp_path / "kubelet.yaml").write_text(yaml.safe_dump(config))
    done = Runner().run(
        "kubelet",
        f"--config={tmp_path / 'kubelet.yaml'}",
        f"--kubeconfig={LocalPaths.default().workdir / 'kubeconfig.yaml'}",
        "--hostname-override=vaia-test-node",
        f"--root-dir={tmp_path / 'root'}",
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "validate CRI v1 runtime API" in done.stderr


def test_a_kubelet_that_exited_is_started_again_and_the_node_comes_back(local_engine) -> None:
    """As at start-up when containerd was late: the kubelet's process gone (kwokctl's signal-0
    check would also call a zombie running, so ours reads /proc)."""
    import subprocess

    from devstack.cluster.local import LocalPaths, exited_components, start_exited
    from devstack.core.runner import Runner

    runner, paths = Runner(), LocalPaths.default()
    kubelet = runner.command("kubelet")[0]
    subprocess.run(["pkill", "-f", f"^{kubelet} "], check=True)
    wait_for(lambda: "kubelet" in exited_components(paths), 30, "the kubelet stopped")
    said: list[str] = []
    start_exited(paths, runner, said.append)
    assert said and said[0].startswith("kubelet exited at start-up")
    assert exited_components(paths) == {}
    kubectl("wait", "--for=condition=Ready", "node/vaia-local-node", "--timeout=120s")

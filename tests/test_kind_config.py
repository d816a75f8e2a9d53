"""kind-config.yaml against kind's v1alpha4 API (sigs.k8s.io/kind/pkg/apis/config/v1alpha4)."""

import re

import pytest
import yaml

from devstack.cluster import CLUSTER, REGISTRY_HOSTS_DIR
from tests.conftest import ROOT

pytestmark = pytest.mark.static

CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
NETWORKING_FIELDS = {
    "ipFamily",
    "apiServerPort",
    "apiServerAddress",
    "podSubnet",
    "serviceSubnet",
    "disableDefaultCNI",
    "kubeProxyMode",
    "dnsSearch",
}
PORT_MAPPING_FIELDS = {"containerPort", "hostPort", "listenAddress", "protocol"}
MOUNT_FIELDS = {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"}


def problems(config: dict) -> list[str]:
    found = []
    if config.get("kind") != "Cluster" or config.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        found.append("kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4 expected")
    found += [f"unknown cluster field {f}" for f in set(config) - CLUSTER_FIELDS]
    found += [
        f"unknown networking field {f}"
        for f in set(config.get("networking", {})) - NETWORKING_FIELDS
    ]
    for i, node in enumerate(config.get("nodes", [])):
        found += [f"node {i}: unknown field {f}" for f in set(node) - NODE_FIELDS]
        if node.get("role") not in ("control-plane", "worker"):
            found.append(f"node {i}: role must be control-plane or worker")
        for mapping in node.get("extraPortMappings", []):
            found += [
                f"node {i}: unknown port mapping field {f}"
                for f in set(mapping) - PORT_MAPPING_FIELDS
            ]
            if mapping.get("listenAddress", "0.0.0.0") != "127.0.0.1":
                found.append(f"node {i}: port {mapping.get('hostPort')} listens beyond loopback")
        for mount in node.get("extraMounts", []):
            found += [f"node {i}: unknown mount field {f}" for f in set(mount) - MOUNT_FIELDS]
    if not any(
        n.get("role") == "control-plane" for n in config.get("nodes", [{"role": "control-plane"}])
    ):
        found.append("no control-plane node")
    return found


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "kind-config.yaml").read_text())


def test_kind_config_uses_only_v1alpha4_fields(config) -> None:
    assert problems(config) == []


def test_cluster_name_and_registry_config_path(config) -> None:
    assert config["name"] == CLUSTER == "vaia"
    [patch] = config["containerdConfigPatches"]
    assert re.search(r'config_path\s*=\s*"/etc/containerd/certs.d"', patch)
    assert REGISTRY_HOSTS_DIR.startswith("/etc/containerd/certs.d/")


def test_the_checker_catches_mistakes(config) -> None:
    assert problems({**config, "node": []}) == ["unknown cluster field node"]
    bad_node = {
        **config,
        "nodes": [{"role": "master", "extraPortMappings": [{"containerPort": 80, "hostPort": 80}]}],
    }
    assert len(problems(bad_node)) == 3  # role, beyond loopback, no control plane

"""kind-config.yaml against kind's v1alpha4 API (sigs.k8s.io/kind/pkg/apis/config/v1alpha4,
types.go): only the fields kind knows, valid roles, a control plane, ports on loopback only, and
containerd reading per-registry settings from certs.d, where `invoke cluster.up` writes them."""

from __future__ import annotations

import re
from typing import Any

from devstack.cluster.kind import REGISTRY_HOSTS_DIR
from devstack.core.names import CLUSTER

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


def problems(config: dict[str, Any]) -> list[str]:
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


def contract_problems(config: dict[str, Any]) -> list[str]:
    """The cluster is the one `cluster.up` expects, and containerd reads certs.d."""
    found = []
    if config.get("name") != CLUSTER:
        found.append(f"the cluster must be named {CLUSTER}, not {config.get('name')!r}")
    patches = "\n".join(config.get("containerdConfigPatches", []))
    certs_dir = REGISTRY_HOSTS_DIR.rsplit("/", 1)[0]
    if not re.search(rf'config_path\s*=\s*"{re.escape(certs_dir)}"', patches):
        found.append(f"containerd must read registry settings from {certs_dir}")
    return found

"""The configuration `invoke cluster.up` gives `kind create cluster`: kind-config.yaml as it is
(what a laptop runs), with only what this run needs beyond it, through kind's own fields:

- `--node-image IMAGE`: every node's image;
- a node image that carries no kindnetd (built here: devstack/cluster/nodeimage.py labels it):
  kind's default CNI off (`networking.disableDefaultCNI`); `cluster.up` installs flannel;
- a host whose bounding set lacks CAP_SYS_RESOURCE: containerd's `restrict_oom_score_adj`, which
  kind's own entrypoint sets in a user namespace. Without it no pod starts here: a sandbox's
  oom_score_adj below containerd's own is refused, and runc fails with "can't get final child's
  PID from pipe: EOF" (measured on this machine).
kind validates the result strictly when it creates the cluster (its fields, roles, a control
plane); `contract_problems` checks what kind cannot know: that it is the cluster `cluster.up`
expects.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from devstack.core.names import CLUSTER

CERTS_D = "/etc/containerd/certs.d"  # where cluster.up writes each registry's hosts.toml
RESTRICT_OOM_SCORE_ADJ = '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true'


def load(root: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((root / "kind-config.yaml").read_text())
    return config


def effective(
    base: dict[str, Any],
    node_image: str | None = None,
    default_cni: bool = True,
    restrict_oom_score_adj: bool = False,
) -> dict[str, Any]:
    """`base` with the additions this run needs (a copy; `base` is not changed)."""
    config = copy.deepcopy(base)
    if node_image:
        for node in config.get("nodes", []):
            node["image"] = node_image
    if not default_cni:
        config.setdefault("networking", {})["disableDefaultCNI"] = True
    if restrict_oom_score_adj:
        config.setdefault("containerdConfigPatches", []).append(RESTRICT_OOM_SCORE_ADJ)
    return config


def contract_problems(config: dict[str, Any]) -> list[str]:
    """The cluster `cluster.up` expects: named vaia, containerd reading certs.d (where it writes
    the registries' settings), and no port published beyond loopback."""
    found = []
    if config.get("name") != CLUSTER:
        found.append(f"the cluster must be named {CLUSTER}, not {config.get('name')!r}")
    patches = "\n".join(config.get("containerdConfigPatches", []))
    if not re.search(rf'config_path\s*=\s*"{re.escape(CERTS_D)}"', patches):
        found.append(f"containerd must read registry settings from {CERTS_D}")
    for index, node in enumerate(config.get("nodes", [])):
        for mapping in node.get("extraPortMappings", []):
            if mapping.get("listenAddress", "0.0.0.0") != "127.0.0.1":
                found.append(
                    f"node {index}: port {mapping.get('hostPort')} listens beyond loopback"
                )
    return found

"""The CNI of a cluster whose node image carries no kindnetd (a node image built here:
devstack/cluster/nodeimage.py): flannel, its own manifest from its module (kept beside its
binary) with the kustomization of k8s/cluster/flannel/, applied idempotently; then every node
Ready. Its images are in the node image, so nothing is pulled.

flannel enforces no NetworkPolicy. kindnetd's policy engine, kube-network-policies, was run on
these nodes: it needs nftables' `queue` statement, which this kernel lacks (CONFIG_NFT_QUEUE is
not set), and every sync failed with `netlink receive: no such file or directory`; so policies
are not enforced here, and the NetworkPolicy checks stay a model (docs/testing.md).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from devstack.cluster.cli import ClusterCli
from devstack.core.catalogue import program_of

Log = Callable[[str], None]
NAMESPACE = "kube-flannel"
DAEMONSET = "kube-flannel-ds"


def install_flannel(cli: ClusterCli, root: Path, log: Log, timeout: str = "180s") -> None:
    manifest = program_of("flanneld").kept("Documentation/kube-flannel.yml")
    with tempfile.TemporaryDirectory(prefix="vaia-flannel-") as tmp:
        folder = Path(tmp)
        shutil.copy(root / "k8s" / "cluster" / "flannel" / "kustomization.yaml", folder)
        shutil.copy(manifest, folder / "kube-flannel.yml")
        cli.kubectl("apply", "-k", str(folder))
    cli.kubectl(
        "-n", NAMESPACE, "rollout", "status", f"daemonset/{DAEMONSET}", f"--timeout={timeout}"
    )
    cli.kubectl("wait", "--for=condition=Ready", "nodes", "--all", f"--timeout={timeout}")
    log("flannel ready on every node (the node image carries no kindnetd)")

"""The local cluster: kind + a local registry, done idempotently (check before create).

`cluster_up` creates the registry container, the kind cluster from kind-config.yaml (with only
what this run needs added: devstack/cluster/kind_config.py), points every node's containerd at
the registry (and, `--offline`, at it for docker.io too: devstack/cluster/mirror.py), connects the
registry to kind's network, installs flannel where the node image has no kindnetd
(devstack/cluster/cni.py), the KEP-1755 ConfigMap and metrics-server. Every command goes through
`ClusterCli`, which runs docker, kind and kubectl through the one runner and names the kube context
on every kubectl call; the cluster tier runs it all for real on kind's nodes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack.cluster import cni, kind_config, mirror
from devstack.cluster.cli import ClusterCli
from devstack.core.errors import CommandError
from devstack.core.names import CLUSTER, NAMESPACE, REGISTRY, REGISTRY_HOST, REGISTRY_PORT
from devstack.core.net import port_open
from devstack.core.process import error_output

REGISTRY_IMAGE = "registry:2"
CERTS_D = kind_config.CERTS_D
REGISTRY_HOSTS_TOML = f'[host."http://{REGISTRY}:5000"]\n'
KIND_NETWORK = "kind"
DEFAULT_CNI_LABEL = "io.vaia.node-image.default-cni"  # devstack/cluster/nodeimage.py sets it
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default serviceSubnet (kind-config.yaml sets none)
UNPROGRAMMED = "vaia: a Service address no kube-proxy rule answers yet"
CLUSTER_TOOLS = ("docker", "kind", "kubectl")
Log = Callable[[str], None]


@dataclass(frozen=True)
class UpOptions:
    """What `invoke cluster.up` was asked for beyond kind-config.yaml."""

    node_image: str | None = None  # every node's image (default: kind-config.yaml's)
    offline: bool = False  # nothing can be pulled: stand-ins, and docker.io through the registry
    registry_image: str = REGISTRY_IMAGE
    restrict_oom_score_adj: bool = False  # the host cannot lower an oom_score_adj


def ensure_registry(cli: ClusterCli, log: Log, image: str = REGISTRY_IMAGE) -> None:
    state = cli.docker("inspect", "-f", "{{.State.Running}}", REGISTRY, check=False)
    if state.returncode == 0 and state.stdout.strip() == "true":
        log(f"registry {REGISTRY} already running")
        return
    if state.returncode == 0:
        cli.docker("start", REGISTRY)
        log(f"registry {REGISTRY} started")
        return
    cli.docker(
        "run",
        "-d",
        "--restart=always",
        "--name",
        REGISTRY,
        "-p",
        f"127.0.0.1:{REGISTRY_PORT}:5000",
        image,
    )
    log(f"registry {REGISTRY} created on 127.0.0.1:{REGISTRY_PORT}")


def default_cni(cli: ClusterCli, image: str) -> bool:
    """Whether a node image runs kind's own CNI (every upstream one does)."""
    done = cli.docker(
        "image",
        "inspect",
        "-f",
        f'{{{{index .Config.Labels "{DEFAULT_CNI_LABEL}"}}}}',
        image,
        check=False,
    )
    return done.returncode != 0 or done.stdout.strip() in ("", "<no value>")


def node_image_of(root: Path, options: UpOptions) -> str:
    if options.node_image:
        return options.node_image
    images = {str(node["image"]) for node in kind_config.load(root).get("nodes", [])}
    return sorted(images)[0]


def ensure_cluster(cli: ClusterCli, root: Path, log: Log, options: UpOptions = UpOptions()) -> None:
    if CLUSTER in cli.kind("get", "clusters").stdout.split():
        log(f"cluster {CLUSTER} already exists")
        return
    with_kindnet = default_cni(cli, node_image_of(root, options))
    config = kind_config.effective(
        kind_config.load(root),
        options.node_image,
        default_cni=with_kindnet,
        restrict_oom_score_adj=options.restrict_oom_score_adj,
    )
    with tempfile.NamedTemporaryFile("w", prefix="kind-config-", suffix=".yaml") as file:
        yaml.safe_dump(config, file)
        file.flush()
        # Without kind's CNI no node is Ready until flannel runs: kind cannot wait for that.
        wait = ["--wait", "120s"] if with_kindnet else []
        cli.kind("create", "cluster", "--name", CLUSTER, "--config", file.name, *wait)
    added = [
        f"node image {options.node_image}" if options.node_image else "",
        "no kind CNI (flannel)" if not with_kindnet else "",
        "containerd's restrict_oom_score_adj" if options.restrict_oom_score_adj else "",
    ]
    extra = ", ".join(a for a in added if a)
    log(f"cluster {CLUSTER} created" + (f" (kind-config.yaml with {extra})" if extra else ""))


def node_names(cli: ClusterCli) -> list[str]:
    return cli.kind("get", "nodes", "--name", CLUSTER).stdout.split()


def configure_nodes(cli: ClusterCli, log: Log, offline: bool = False) -> None:
    """containerd on each node resolves localhost:5001 to the registry container. Offline, it
    reads docker.io through it too, and a Service address that no rule answers yet is refused in
    the node instead of leaving it: on this machine such packets reached a transparent proxy that
    answered them, and the API server's first check of metrics-server, sent before kube-proxy
    had its rule, stayed pinned to that proxy (conntrack), its APIService never Available."""
    hosts = {REGISTRY_HOST: REGISTRY_HOSTS_TOML}
    if offline:
        hosts["docker.io"] = mirror.DOCKER_IO_HOSTS_TOML
    for node in node_names(cli):
        if offline:
            refuse_unprogrammed_services(cli, node)
        for registry, toml in hosts.items():
            path = f"{CERTS_D}/{registry}/hosts.toml"
            current = cli.docker("exec", node, "cat", path, check=False)
            if current.returncode == 0 and current.stdout == toml:
                continue
            cli.docker("exec", node, "mkdir", "-p", f"{CERTS_D}/{registry}")
            cli.docker("exec", "-i", node, "cp", "/dev/stdin", path, stdin=toml)
            log(f"{node}: {registry} through {REGISTRY}")


def refuse_unprogrammed_services(cli: ClusterCli, node: str) -> None:
    """A packet to a Service address still has that address after kube-proxy's DNAT only when no
    rule answers it yet: refused there, in the filter table (a route would refuse the node's
    own connections too, before their DNAT), in the node's OUTPUT and FORWARD chains."""
    for chain in ("OUTPUT", "FORWARD"):
        rule = [
            chain,
            "-d",
            SERVICE_SUBNET,
            "-m",
            "comment",
            "--comment",
            UNPROGRAMMED,
            "-j",
            "REJECT",
        ]
        if cli.docker("exec", node, "iptables", "-w", "-C", *rule, check=False).returncode != 0:
            cli.docker("exec", node, "iptables", "-w", "-I", *rule)


def connect_registry(cli: ClusterCli, log: Log) -> None:
    networks = cli.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", REGISTRY).stdout
    if f'"{KIND_NETWORK}"' in networks:
        return
    cli.docker("network", "connect", KIND_NETWORK, REGISTRY)
    log(f"{REGISTRY} connected to the {KIND_NETWORK} network")


def runs_kindnet(cli: ClusterCli) -> bool:
    """Whether the cluster's nodes came from an image with kind's own CNI."""
    nodes = node_names(cli)
    done = cli.docker(
        "inspect",
        "-f",
        f'{{{{index .Config.Labels "{DEFAULT_CNI_LABEL}"}}}}',
        nodes[0],
        check=False,
    )
    return done.returncode != 0 or done.stdout.strip() in ("", "<no value>")


def install_addons(cli: ClusterCli, root: Path, log: Log, timeout: str = "180s") -> None:
    """Apply is idempotent; then wait until the HPA can really read metrics."""
    cli.kubectl("apply", "-f", str(root / "k8s" / "cluster" / "local-registry-hosting.yaml"))
    cli.kubectl("apply", "-k", str(root / "k8s" / "cluster" / "metrics-server"))
    cli.kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/metrics-server",
        f"--timeout={timeout}",
    )
    cli.kubectl(
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        f"--timeout={timeout}",
    )
    log("metrics-server ready")


def cluster_up(
    cli: ClusterCli,
    root: Path,
    log: Log = print,
    options: UpOptions = UpOptions(),
    mirrored: Callable[[], dict[str, str]] | None = None,
) -> None:
    """`mirrored`: the images to serve as docker.io's (--offline), by their docker.io names."""
    cli.runner.preflight(*CLUSTER_TOOLS)
    ensure_registry(cli, log, options.registry_image)
    ensure_cluster(cli, root, log, options)
    configure_nodes(cli, log, offline=options.offline)
    connect_registry(cli, log)
    if not runs_kindnet(cli):
        cni.install_flannel(cli, root, log)
    install_addons(cli, root, log)
    if mirrored is not None:
        from devstack.image.docker import Docker

        mirror.push(Docker(cli.runner), mirrored(), log)


def cluster_down(cli: ClusterCli, log: Log = print) -> None:
    cli.runner.preflight("docker", "kind")
    if CLUSTER in cli.kind("get", "clusters").stdout.split():
        cli.kind("delete", "cluster", "--name", CLUSTER)
        log(f"cluster {CLUSTER} deleted")
    if cli.docker("inspect", REGISTRY, check=False).returncode == 0:
        cli.docker("rm", "-f", "-v", REGISTRY)
        log(f"registry {REGISTRY} removed")
    # kind leaves its network behind; it goes when nothing else is on it.
    network = cli.docker(
        "network", "inspect", "-f", "{{len .Containers}}", KIND_NETWORK, check=False
    )
    if network.returncode == 0 and network.stdout.strip() == "0":
        cli.docker("network", "rm", KIND_NETWORK)
        log(f"network {KIND_NETWORK} removed")


@contextmanager
def port_forward(
    cli: ClusterCli, service: str, local_port: int, remote_port: int = 80
) -> Iterator[str]:
    """`kubectl port-forward svc/<service>` on 127.0.0.1 for the duration of the block."""
    process = cli.runner.start(
        "kubectl",
        "--context",
        cli.context,
        "-n",
        NAMESPACE,
        "port-forward",
        "--address",
        "127.0.0.1",
        f"svc/{service}",
        f"{local_port}:{remote_port}",
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open(local_port):
            if process.poll() is not None or time.monotonic() > deadline:
                error = error_output(process, 500) if process.poll() is not None else ""
                raise CommandError(
                    f"kubectl port-forward svc/{service} did not come up: {error.strip()}"
                )
            time.sleep(0.2)
        yield f"http://127.0.0.1:{local_port}"
    finally:
        process.terminate()
        process.wait(timeout=10)

"""The local cluster: kind + a local registry, done idempotently (check before create).

Every command goes through `ClusterCli`, which runs docker, kind and kubectl through the one
runner and names the kube context on every kubectl call. The tests give the runner a recording
`execute` (tests/devstack/cluster/test_kind.py), so the order and idempotency are checked without a
cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.core.errors import CommandError
from devstack.core.names import CLUSTER, CONTEXT, NAMESPACE, REGISTRY, REGISTRY_HOST, REGISTRY_PORT
from devstack.core.net import port_open
from devstack.core.process import error_output
from devstack.core.runner import Result, Runner

REGISTRY_IMAGE = "registry:2"
REGISTRY_HOSTS_DIR = f"/etc/containerd/certs.d/{REGISTRY_HOST}"
REGISTRY_HOSTS_TOML = f'[host."http://{REGISTRY}:5000"]\n'
KIND_NETWORK = "kind"
CLUSTER_TOOLS = ("docker", "kind", "kubectl")
Log = Callable[[str], None]


class ClusterCli:
    """docker, kind and kubectl; kubectl always with `context`, never whatever is current."""

    def __init__(self, runner: Runner, context: str = CONTEXT) -> None:
        self.runner = runner
        self.context = context

    def docker(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.runner.run("docker", *args, check=check, stdin=stdin)

    def kind(self, *args: str, check: bool = True) -> Result:
        return self.runner.run("kind", *args, check=check)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.runner.run(
            "kubectl", "--context", self.context, *args, check=check, stdin=stdin
        )


def ensure_registry(cli: ClusterCli, log: Log) -> None:
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
        REGISTRY_IMAGE,
    )
    log(f"registry {REGISTRY} created on 127.0.0.1:{REGISTRY_PORT}")


def ensure_cluster(cli: ClusterCli, root: Path, log: Log) -> None:
    if CLUSTER in cli.kind("get", "clusters").stdout.split():
        log(f"cluster {CLUSTER} already exists")
        return
    config = str(root / "kind-config.yaml")
    cli.kind("create", "cluster", "--name", CLUSTER, "--config", config, "--wait", "120s")
    log(f"cluster {CLUSTER} created")


def configure_nodes(cli: ClusterCli, log: Log) -> None:
    """containerd on each node resolves localhost:5001 to the registry container."""
    hosts = f"{REGISTRY_HOSTS_DIR}/hosts.toml"
    for node in cli.kind("get", "nodes", "--name", CLUSTER).stdout.split():
        current = cli.docker("exec", node, "cat", hosts, check=False)
        if current.returncode == 0 and current.stdout == REGISTRY_HOSTS_TOML:
            continue
        cli.docker("exec", node, "mkdir", "-p", REGISTRY_HOSTS_DIR)
        cli.docker("exec", "-i", node, "cp", "/dev/stdin", hosts, stdin=REGISTRY_HOSTS_TOML)
        log(f"{node}: registry mirror configured")


def connect_registry(cli: ClusterCli, log: Log) -> None:
    networks = cli.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", REGISTRY).stdout
    if f'"{KIND_NETWORK}"' in networks:
        return
    cli.docker("network", "connect", KIND_NETWORK, REGISTRY)
    log(f"{REGISTRY} connected to the {KIND_NETWORK} network")


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


def cluster_up(cli: ClusterCli, root: Path, log: Log = print) -> None:
    cli.runner.preflight(*CLUSTER_TOOLS)
    ensure_registry(cli, log)
    ensure_cluster(cli, root, log)
    configure_nodes(cli, log)
    connect_registry(cli, log)
    install_addons(cli, root, log)


def cluster_down(cli: ClusterCli, log: Log = print) -> None:
    cli.runner.preflight("docker", "kind")
    if CLUSTER in cli.kind("get", "clusters").stdout.split():
        cli.kind("delete", "cluster", "--name", CLUSTER)
        log(f"cluster {CLUSTER} deleted")
    if cli.docker("inspect", REGISTRY, check=False).returncode == 0:
        cli.docker("rm", "-f", REGISTRY)
        log(f"registry {REGISTRY} removed")


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

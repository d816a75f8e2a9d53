"""The local cluster: kind + a local registry, done idempotently (check before create).

Every command goes through `Tools`, which resolves each tool once through the shared preflight
(devstack.tools.require) and runs it through a `Runner`: subprocess in real use, a recording fake
in the tests (tests/devstack/test_cluster.py), so the order and idempotency are checked without
a cluster.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from devstack.tools import require

CLUSTER = "vaia"
CONTEXT = "kind-vaia"
NAMESPACE = "vaia"
REGISTRY = "kind-registry"
REGISTRY_IMAGE = "registry:2"
REGISTRY_HOST_PORT = 5001
REGISTRY_HOSTS_DIR = f"/etc/containerd/certs.d/localhost:{REGISTRY_HOST_PORT}"
REGISTRY_HOSTS_TOML = f'[host."http://{REGISTRY}:5000"]\n'
KIND_NETWORK = "kind"
CLUSTER_TOOLS = ("docker", "kind", "kubectl")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class CommandError(RuntimeError):
    pass


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        capture: bool = True,
    ) -> Result: ...


@dataclass
class Shell:
    """Runs commands for real, echoing each one (without its stdin, which may hold a secret)."""

    echo: Callable[[str], None] = print
    timeout: float = 900

    def __call__(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        capture: bool = True,
    ) -> Result:
        self.echo("$ " + " ".join(argv))
        if not capture:  # a foreground program (tilt up): the terminal is its own
            code = subprocess.run(list(argv), check=False).returncode
            if check and code != 0:
                raise CommandError(f"{' '.join(argv[:2])} exited with {code}")
            return Result(code)
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise CommandError(
                f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        return result


@dataclass
class Tools:
    runner: Runner
    resolve: Callable[[str], str] = require
    context: str = CONTEXT  # every kubectl call names it: never whatever is current
    _paths: dict[str, str] = field(default_factory=dict)

    def preflight(self, *names: str) -> None:
        """Resolve every tool before anything runs: a missing one fails fast, changing nothing."""
        for name in names:
            self._path(name)

    def _path(self, name: str) -> str:
        if name not in self._paths:
            self._paths[name] = self.resolve(name)
        return self._paths[name]

    def run(
        self,
        tool: str,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        capture: bool = True,
    ) -> Result:
        return self.runner([self._path(tool), *args], check=check, stdin=stdin, capture=capture)

    def spawn(self, tool: str, *args: str) -> subprocess.Popen[bytes]:
        """A long-running helper (kubectl port-forward) in the background."""
        return subprocess.Popen(
            [self._path(tool), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def docker(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.run("docker", *args, check=check, stdin=stdin)

    def kind(self, *args: str, check: bool = True) -> Result:
        return self.run("kind", *args, check=check)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.run("kubectl", "--context", self.context, *args, check=check, stdin=stdin)


def ensure_registry(tools: Tools, log: Callable[[str], None]) -> None:
    state = tools.docker("inspect", "-f", "{{.State.Running}}", REGISTRY, check=False)
    if state.returncode == 0 and state.stdout.strip() == "true":
        log(f"registry {REGISTRY} already running")
        return
    if state.returncode == 0:
        tools.docker("start", REGISTRY)
        log(f"registry {REGISTRY} started")
        return
    tools.docker(
        "run",
        "-d",
        "--restart=always",
        "--name",
        REGISTRY,
        "-p",
        f"127.0.0.1:{REGISTRY_HOST_PORT}:5000",
        REGISTRY_IMAGE,
    )
    log(f"registry {REGISTRY} created on 127.0.0.1:{REGISTRY_HOST_PORT}")


def ensure_cluster(tools: Tools, root: Path, log: Callable[[str], None]) -> None:
    if CLUSTER in tools.kind("get", "clusters").stdout.split():
        log(f"cluster {CLUSTER} already exists")
        return
    tools.kind(
        "create",
        "cluster",
        "--name",
        CLUSTER,
        "--config",
        str(root / "kind-config.yaml"),
        "--wait",
        "120s",
    )
    log(f"cluster {CLUSTER} created")


def configure_nodes(tools: Tools, log: Callable[[str], None]) -> None:
    """containerd on each node resolves localhost:5001 to the registry container."""
    hosts = f"{REGISTRY_HOSTS_DIR}/hosts.toml"
    for node in tools.kind("get", "nodes", "--name", CLUSTER).stdout.split():
        current = tools.docker("exec", node, "cat", hosts, check=False)
        if current.returncode == 0 and current.stdout == REGISTRY_HOSTS_TOML:
            continue
        tools.docker("exec", node, "mkdir", "-p", REGISTRY_HOSTS_DIR)
        tools.docker("exec", "-i", node, "cp", "/dev/stdin", hosts, stdin=REGISTRY_HOSTS_TOML)
        log(f"{node}: registry mirror configured")


def connect_registry(tools: Tools, log: Callable[[str], None]) -> None:
    networks = tools.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", REGISTRY).stdout
    if f'"{KIND_NETWORK}"' in networks:
        return
    tools.docker("network", "connect", KIND_NETWORK, REGISTRY)
    log(f"{REGISTRY} connected to the {KIND_NETWORK} network")


def install_addons(
    tools: Tools, root: Path, log: Callable[[str], None], timeout: str = "180s"
) -> None:
    """Apply is idempotent; then wait until the HPA can really read metrics."""
    tools.kubectl("apply", "-f", str(root / "k8s" / "cluster" / "local-registry-hosting.yaml"))
    tools.kubectl("apply", "-k", str(root / "k8s" / "cluster" / "metrics-server"))
    tools.kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/metrics-server",
        f"--timeout={timeout}",
    )
    tools.kubectl(
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        f"--timeout={timeout}",
    )
    log("metrics-server ready")


def cluster_up(tools: Tools, root: Path, log: Callable[[str], None] = print) -> None:
    tools.preflight(*CLUSTER_TOOLS)
    ensure_registry(tools, log)
    ensure_cluster(tools, root, log)
    configure_nodes(tools, log)
    connect_registry(tools, log)
    install_addons(tools, root, log)


@contextmanager
def port_forward(
    tools: Tools, service: str, local_port: int, remote_port: int = 80
) -> Iterator[str]:
    """`kubectl port-forward svc/<service>` on 127.0.0.1 for the duration of the block."""
    process = tools.spawn(
        "kubectl",
        "--context",
        CONTEXT,
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
        while not _port_open(local_port):
            if process.poll() is not None or time.monotonic() > deadline:
                error = (
                    process.stderr.read().decode()[-500:]
                    if process.stderr and process.poll() is not None
                    else ""
                )
                raise CommandError(f"kubectl port-forward svc/{service} did not come up: {error}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{local_port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tilt_up(tools: Tools, root: Path) -> None:
    tools.preflight("tilt")
    tools.run("tilt", "up", "--file", str(root / "Tiltfile"), "--context", CONTEXT, capture=False)


def tilt_down(tools: Tools, root: Path) -> None:
    tools.run("tilt", "down", "--file", str(root / "Tiltfile"), "--context", CONTEXT, check=False)


def cluster_down(tools: Tools, log: Callable[[str], None] = print) -> None:
    tools.preflight("docker", "kind")
    if CLUSTER in tools.kind("get", "clusters").stdout.split():
        tools.kind("delete", "cluster", "--name", CLUSTER)
        log(f"cluster {CLUSTER} deleted")
    if tools.docker("inspect", REGISTRY, check=False).returncode == 0:
        tools.docker("rm", "-f", REGISTRY)
        log(f"registry {REGISTRY} removed")

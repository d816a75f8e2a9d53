"""`invoke cluster.up --engine local`: a real control plane of the pinned binaries on this
machine, run by kwokctl's binary runtime, for where kind cannot run (kind's nodes are privileged
containers).

kwokctl starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok's controller and
metrics-server as local processes, and, as components of the same cluster (kwokctl's own
`components:`, ordered by their links, stopped and removed with it), what `invoke cluster.up`
gives kind besides: the local registry on localhost:5001 (Debian's docker-registry) and a default
StorageClass from local-path-provisioner (kind's own). Then the KEP-1755 ConfigMap that Tilt
reads, the node, and the context `vaia-local` beside kwokctl's own `kwok-vaia-local`.

The node is real by default (devstack/cluster/node.py: a kubelet with containerd, kube-proxy,
CoreDNS; it needs root), or kwok's simulated one with `--node kwok` (devstack/cluster/
simulated.py: nothing runs, which is enough for the API server's side of things). Every step
checks before it creates, so `cluster.up` is idempotent, and `cluster.down` leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster import node as real
from devstack.cluster import simulated
from devstack.cluster.binaries import program_of
from devstack.cluster.kind import ClusterCli
from devstack.core import names
from devstack.core.cache import cache_root
from devstack.core.errors import CommandError, DevstackError, UsageError
from devstack.core.net import port_open
from devstack.core.runner import Runner
from devstack.core.wait import wait_until

Log = Callable[[str], None]

KWOK_CLUSTER = names.LOCAL_CLUSTER  # kwokctl's name; its own context is kwok-<name>
KWOK_CONTEXT = f"kwok-{KWOK_CLUSTER}"
NODES = ("real", "kwok")
CONTROL_PLANE_TOOLS = (
    "kwokctl",
    "kwok",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "metrics-server",
    "local-path-provisioner",
    "docker-registry",
)
STORAGE_CLASS = "standard"  # kind's name for its local-path default class


def tools_for(node: str) -> tuple[str, ...]:
    return CONTROL_PLANE_TOOLS + (real.NODE_TOOLS if node == "real" else ())


@dataclass(frozen=True)
class LocalPaths:
    """Our files for the engine (kwokctl keeps its own in its workdir)."""

    root: Path

    @classmethod
    def default(cls) -> LocalPaths:
        return cls(cache_root() / "local-engine")

    @property
    def workdir(self) -> Path:
        """kwokctl's folder for the cluster: its PKI, kubeconfig, logs and pid files."""
        base = os.environ.get("KWOK_WORKDIR") or str(Path.home() / ".kwok")
        return Path(base) / "clusters" / KWOK_CLUSTER

    @property
    def kwokctl_config(self) -> Path:
        return self.root / "kwokctl.yaml"

    @property
    def node_mode(self) -> Path:
        return self.root / "node"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry.yaml"

    @property
    def registry_data(self) -> Path:
        return self.root / "registry"

    @property
    def storage_config(self) -> Path:
        return self.root / "local-path-config.json"

    @property
    def helper_pod(self) -> Path:
        return self.root / "local-path-helper-pod.yaml"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"


def kubeconfig_path() -> Path:
    """Where kwokctl adds its context: the first file of $KUBECONFIG, else ~/.kube/config."""
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


# --- what kwokctl runs --------------------------------------------------------------------------


def registry_config(paths: LocalPaths) -> dict[str, Any]:
    """distribution's configuration: on 127.0.0.1:5001 only, layers under the engine's folder."""
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(paths.registry_data)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{names.REGISTRY_PORT}"},
    }


def kwokctl_config(runner: Runner, paths: LocalPaths, node: str) -> list[dict[str, Any]]:
    """The whole cluster as kwokctl reads it: the binaries, the extra components, the patches
    of kwokctl's own components, and the simulated node's lifecycles."""
    binary = {tool: runner.command(tool)[0] for tool in tools_for(node)}
    workdir = paths.workdir
    components = [
        {
            "name": "registry",
            "binary": binary["docker-registry"],
            "args": ["serve", str(paths.registry_config)],
            "workDir": str(workdir),
        },
        {
            "name": "local-path-provisioner",
            "binary": binary["local-path-provisioner"],
            "args": [
                "--debug",
                "start",
                f"--config={paths.storage_config}",
                f"--helper-pod-file={paths.helper_pod}",
                f"--namespace={simulated.STORAGE_NAMESPACE}",
                "--service-account-name=local-path-provisioner-service-account",
                "--helper-image=busybox",
                f"--kubeconfig={workdir / 'kubeconfig.yaml'}",
            ],
            "links": ["kube-apiserver"],
            "workDir": str(workdir),
        },
    ]
    if node == "real":
        components += real.components(runner, real.NodePaths(), workdir)
    config: dict[str, Any] = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "etcdBinary": binary["etcd"],
            "kubeApiserverBinary": binary["kube-apiserver"],
            "kubeControllerManagerBinary": binary["kube-controller-manager"],
            "kubeSchedulerBinary": binary["kube-scheduler"],
            "kubectlBinary": binary["kubectl"],
            "kwokControllerBinary": binary["kwok"],
            # Pods reach the API server as the `kubernetes` Service: its serving certificate
            # must name it (kwokctl adds this machine's addresses itself).
            "kubeApiserverCertSANs": real.API_SERVER_NAMES,
            "enableMetricsServer": True,
            "metricsServerBinary": binary["metrics-server"],
            # Its release's own kustomization, from its module source; kwokctl renders it
            # (`kubectl kustomize`) and points the APIService at the process.
            "metricsServerManifests": [str(program_of("metrics-server").kept("manifests/base"))],
        },
        "components": components,
        "componentsPatches": [
            # The binary runtime has kwok manage every node; here only the simulated ones, so
            # that a real kubelet's node is never taken over (kwokctl's kind runtime does so).
            {
                "name": "kwok-controller",
                "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false", "override": True},
                    {
                        "key": "manage-nodes-with-annotation-selector",
                        "value": simulated.SIMULATED,
                    },
                ],
            },
            *real.control_plane_patches(workdir),
        ],
    }
    return [config, *simulated.kwok_stages()]


def _storage_release() -> list[dict[str, Any]]:
    source = program_of("local-path-provisioner").kept("deploy/local-path-storage.yaml")
    return [o for o in yaml.safe_load_all(source.read_text()) if o]


def storage_config(paths: LocalPaths) -> str:
    """Volumes under the engine's folder on every node."""
    node = {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(paths.volumes)]}
    return json.dumps({"nodePathMap": [node]}, indent=2)


def storage_objects(paths: LocalPaths) -> list[dict[str, Any]]:
    """local-path-provisioner's release manifest (kept beside its binary) without its
    Deployment (the provisioner is a component of the cluster): its namespace, account, RBAC,
    the ConfigMap its helper pods mount their scripts from (our volume folder in its config),
    and its StorageClass as kind names it, `standard`, the default."""
    objects = [o for o in _storage_release() if o["kind"] != "Deployment"]
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            obj["data"]["config.json"] = storage_config(paths)
        if obj["kind"] == "StorageClass":
            obj["metadata"] = {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            }
    return objects


def write_files(runner: Runner, paths: LocalPaths, node: str) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.registry_data.mkdir(exist_ok=True)
    paths.volumes.mkdir(exist_ok=True)
    paths.registry_config.write_text(yaml.safe_dump(registry_config(paths)))
    config_map = next(o for o in _storage_release() if o["kind"] == "ConfigMap")
    paths.storage_config.write_text(storage_config(paths))
    paths.helper_pod.write_text(config_map["data"]["helperPod.yaml"])
    if node == "real":
        real.write_node_files(real.NodePaths(), paths.workdir)
    paths.kwokctl_config.write_text(
        yaml.safe_dump_all(kwokctl_config(runner, paths, node), sort_keys=False)
    )
    paths.node_mode.write_text(node)


# --- up and down ------------------------------------------------------------------------------


def exists(runner: Runner) -> bool:
    return KWOK_CLUSTER in runner.run("kwokctl", "get", "clusters").stdout.split()


def check_node_mode(node: str) -> None:
    if node not in NODES:
        raise UsageError(f"--node {node!r}: one of {', '.join(NODES)}")
    if node == "real" and os.geteuid() != 0:
        raise UsageError(
            "the real node needs root (the kubelet and containerd manage cgroups, mounts and "
            "network namespaces): run as root, or pass --node kwok for a simulated node"
        )


def local_up(
    runner: Runner,
    root: Path,
    log: Log = print,
    node: str = "real",
    paths: LocalPaths | None = None,
    push_images: Callable[[], None] | None = None,
) -> None:
    """The cluster, complete; `push_images` puts what the real node pulls into the registry."""
    paths = paths or LocalPaths.default()
    check_node_mode(node)
    runner.preflight(*tools_for(node))
    if exists(runner):
        made = paths.node_mode.read_text().strip() if paths.node_mode.exists() else "kwok"
        if made != node:
            raise UsageError(
                f"{KWOK_CLUSTER} runs a {made} node, not a {node} one: `invoke cluster.down "
                "--engine local` first"
            )
        runner.run("kwokctl", "start", "cluster", "--name", KWOK_CLUSTER)
        log(f"cluster {KWOK_CLUSTER} already exists (kwokctl): started what was stopped")
    else:
        if port_open(names.REGISTRY_PORT):
            raise DevstackError(
                f"port {names.REGISTRY_PORT} is taken (a kind-registry container, or another "
                "registry): the local engine runs its own registry there; `invoke cluster.down` "
                "(kind) or stop what listens, then retry"
            )
        write_files(runner, paths, node)
        runner.run(
            "kwokctl", "create", "cluster", "--name", KWOK_CLUSTER,
            "--config", str(paths.kwokctl_config), "--kubeconfig", str(kubeconfig_path()),
            "--wait", "2m", timeout=300,
        )  # fmt: skip
        log(f"cluster {KWOK_CLUSTER} created (kwokctl, binary runtime, a {node} node)")
    runner.run(
        "kubectl", "config", "set-context", names.LOCAL_CONTEXT,
        f"--cluster={KWOK_CONTEXT}", f"--user={KWOK_CONTEXT}",
    )  # fmt: skip
    cli = ClusterCli(runner, names.LOCAL_CONTEXT)
    if node == "real":
        real.wait_for_containerd(real.NodePaths())
        start_exited(paths, runner, log)
    wait_for_registry(paths)
    cli.kubectl("apply", "-f", str(root / "k8s" / "cluster" / "local" / "registry-hosting.yaml"))
    objects = storage_objects(paths)
    if node == "kwok":
        objects.append(simulated.kwok_node())
    cli.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    if node == "real":
        if push_images is not None:
            push_images()
        cli.kubectl("apply", "-f", str(root / "k8s" / "cluster" / "local" / "coredns.yaml"))
    wait_ready(cli, node, log, paths)


def _process_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat (Z: exited, not yet reaped), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def exited_components(paths: LocalPaths) -> dict[str, int]:
    """The components whose process has exited, by kwokctl's pid files (named after each
    binary). Ours, not `kwokctl get components`: kwokctl asks with signal 0, which a zombie
    answers, and a process it forked stays one until this machine's init reaps it (seen here:
    one to two seconds after kwokctl exits)."""
    exited = {}
    for pid_file in sorted((paths.workdir / "pids").glob("*.pid")):
        pid = int(pid_file.read_text().strip())
        if _process_state(pid) in (None, "Z"):
            exited[pid_file.stem] = pid
    return exited


def start_exited(paths: LocalPaths, runner: Runner, log: Log, timeout: float = 30) -> None:
    """Start again what exited at start-up. kwokctl starts the components in the order of their
    links without waiting for one to serve, and restarts none: the kubelet exits at once when
    containerd does not answer yet (its CRI check fails fast; under systemd, kubeadm's unit
    restarts it). `kwokctl start cluster` starts only what is not running, so it runs once the
    exited processes are reaped."""
    exited = exited_components(paths)
    if not exited:
        return
    log(
        f"{', '.join(exited)} exited at start-up (the kubelet does when containerd is not yet "
        "serving): starting again"
    )
    wait_until(
        lambda: all(_process_state(pid) is None for pid in exited.values()),
        timeout,
        lambda: DevstackError(
            f"{', '.join(exited)} exited but no one reaped it within {timeout:.0f} s: "
            "`invoke cluster.down --engine local`, then up again"
        ),
    )
    runner.run("kwokctl", "start", "cluster", "--name", KWOK_CLUSTER)


def wait_for_registry(paths: LocalPaths, timeout: float = 60) -> None:
    wait_until(
        lambda: port_open(names.REGISTRY_PORT),
        timeout,
        lambda: CommandError(
            f"the registry does not answer on 127.0.0.1:{names.REGISTRY_PORT}: see "
            f"{paths.workdir / 'logs' / 'registry.log'}"
        ),
    )


def wait_registered(cli: ClusterCli, name: str, paths: LocalPaths, timeout: str) -> None:
    """Until the node object exists (`--for=condition` refuses a missing object at once, and a
    kubelet registers only once containerd answers); if it never does, the kubelet's last
    words."""
    done = cli.kubectl("wait", "--for=create", f"node/{name}", f"--timeout={timeout}", check=False)
    if done.returncode != 0:
        log_file = paths.workdir / "logs" / "kubelet.log"
        lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
        raise CommandError(
            f"node {name} did not register within {timeout}: see {log_file}"
            + ("; its last lines:\n" + "\n".join(lines[-15:]) if lines else "")
        )


def wait_ready(
    cli: ClusterCli, node: str, log: Log, paths: LocalPaths, timeout: str = "180s"
) -> None:
    """The node Ready, cluster DNS serving (real node), metrics-server's APIService Available."""
    name = real.NODE if node == "real" else simulated.KWOK_NODE
    wait_registered(cli, name, paths, timeout)
    cli.kubectl("wait", "--for=condition=Ready", f"node/{name}", f"--timeout={timeout}")
    if node == "real":
        cli.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", f"--timeout={timeout}"
        )
    cli.kubectl(
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        f"--timeout={timeout}",
    )
    log(f"node {name} ready, registry on {names.REGISTRY_HOST}, metrics-server available")


def local_down(runner: Runner, log: Log = print, paths: LocalPaths | None = None) -> None:
    paths = paths or LocalPaths.default()
    runner.preflight("kwokctl", "kubectl")
    made = paths.node_mode.read_text().strip() if paths.node_mode.exists() else None
    if exists(runner):
        if made == "real":
            real.drain(ClusterCli(runner, names.LOCAL_CONTEXT), log)
        runner.run(
            "kwokctl", "delete", "cluster", "--name", KWOK_CLUSTER,
            "--kubeconfig", str(kubeconfig_path()),
        )  # fmt: skip
        log(f"cluster {KWOK_CLUSTER} deleted")
    if made == "real" or real.NodePaths().lib.exists():
        real.clean_up(runner, real.NodePaths(), log)
    contexts = runner.run("kubectl", "config", "get-contexts", "-o", "name").stdout.split()
    if names.LOCAL_CONTEXT in contexts:
        runner.run("kubectl", "config", "delete-context", names.LOCAL_CONTEXT)
    if paths.root.exists():
        shutil.rmtree(paths.root)
        log(f"removed {paths.root} (the registry's images, the volumes)")

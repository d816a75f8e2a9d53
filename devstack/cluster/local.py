"""`invoke cluster.up --engine local`: a real control plane of the pinned binaries on this
machine, run by kwokctl's binary runtime, for where kind cannot run (kind's nodes are privileged
containers).

kwokctl starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok's controller and
metrics-server as local processes, and, as components of the same cluster (kwokctl's own
`components:`, ordered by their links, stopped and removed with it), what `invoke cluster.up`
gives kind besides: the local registry on localhost:5001 (Debian's docker-registry) and a default
StorageClass from local-path-provisioner (kind's own). Then the KEP-1755 ConfigMap that Tilt
reads, the node (kwok's simulated node), and the context `vaia-local` beside kwokctl's own
`kwok-vaia-local`. Every step checks before it creates, so `cluster.up` is idempotent, and
`cluster.down` leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.binaries import program_of
from devstack.cluster.kind import ClusterCli
from devstack.core import names
from devstack.core.cache import cache_root
from devstack.core.errors import CommandError, DevstackError
from devstack.core.net import port_open
from devstack.core.runner import Runner

Log = Callable[[str], None]

KWOK_CLUSTER = names.LOCAL_CLUSTER  # kwokctl's name; its own context is kwok-<name>
KWOK_CONTEXT = f"kwok-{KWOK_CLUSTER}"
KWOK_NODE = f"{KWOK_CLUSTER}-kwok-0"
# kwok manages only the nodes that carry this annotation (never a real kubelet's node).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SIMULATED = f"{KWOK_NODE_ANNOTATION}=fake"
# A pod whose image tag ends so never becomes ready on the simulated node: how a test makes a
# rollout that cannot complete (kwok's stages decide a simulated pod's readiness).
UNREADY_TAG_SUFFIX = "-unready"
LOCAL_TOOLS = (
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
STORAGE_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "standard"  # kind's name for its local-path default class


@dataclass(frozen=True)
class LocalPaths:
    """Our files for the engine (kwokctl keeps its own under ~/.kwok/clusters/vaia-local)."""

    root: Path

    @classmethod
    def default(cls) -> LocalPaths:
        return cls(cache_root() / "local-engine")

    @property
    def kwokctl_config(self) -> Path:
        return self.root / "kwokctl.yaml"

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

    @property
    def logs(self) -> Path:
        return Path.home() / ".kwok" / "clusters" / KWOK_CLUSTER / "logs"


def _binary(runner: Runner, tool: str) -> str:
    return runner.command(tool)[0]


def kubeconfig_path() -> Path:
    """Where kwokctl adds its context: the first file of $KUBECONFIG, else ~/.kube/config."""
    import os

    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


# --- kwokctl's configuration ------------------------------------------------------------------


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


def kwok_stages() -> list[dict[str, Any]]:
    """kwok's own default lifecycles (from its module source, kept beside the binaries), with
    one change and one addition: a pod whose image tag ends in UNREADY_TAG_SUFFIX runs but never
    becomes ready, and local-path-provisioner's helper pods complete (the provisioner waits for
    them; on the simulated node there is no directory to make)."""
    stages_dir = program_of("kwok").kept("kustomize/stage")
    files = [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ]
    stages = [yaml.safe_load((stages_dir / name).read_text()) for name in files]
    unready = f'.spec.containers.[] | select(.image | endswith("{UNREADY_TAG_SUFFIX}")) | .image'
    by_name = {stage["metadata"]["name"]: stage for stage in stages}
    ready = by_name["pod-ready"]
    ready["spec"]["selector"]["matchExpressions"].append(
        {"key": unready, "operator": "DoesNotExist"}
    )
    never_ready = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pod-running-unready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                    {"key": unready, "operator": "Exists"},
                ]
            },
            "next": {
                "statusTemplate": _RUNNING_UNREADY,
            },
        },
    }
    complete = by_name["pod-complete"]
    helper = dict(complete, metadata={"name": "local-path-helper-complete"})
    helper["spec"] = dict(complete["spec"])
    helper["spec"]["selector"] = {
        "matchExpressions": [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".metadata.namespace", "operator": "In", "values": [STORAGE_NAMESPACE]},
            {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        ]
    }
    return [*stages, never_ready, helper]


_RUNNING_UNREADY = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""


def kwokctl_config(runner: Runner, paths: LocalPaths, kubeconfig: Path) -> list[dict[str, Any]]:
    """The whole cluster as kwokctl reads it: the binaries, the extra components and the node
    lifecycles."""
    workdir = str(Path.home() / ".kwok" / "clusters" / KWOK_CLUSTER)
    kwokctl: dict[str, Any] = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "etcdBinary": _binary(runner, "etcd"),
            "kubeApiserverBinary": _binary(runner, "kube-apiserver"),
            "kubeControllerManagerBinary": _binary(runner, "kube-controller-manager"),
            "kubeSchedulerBinary": _binary(runner, "kube-scheduler"),
            "kubectlBinary": _binary(runner, "kubectl"),
            "kwokControllerBinary": _binary(runner, "kwok"),
            "enableMetricsServer": True,
            "metricsServerBinary": _binary(runner, "metrics-server"),
            # Its release's own kustomization, from its module source; kwokctl renders it
            # (`kubectl kustomize`) and points the APIService at the process.
            "metricsServerManifests": [str(program_of("metrics-server").kept("manifests/base"))],
        },
        "components": [
            {
                "name": "registry",
                "binary": _binary(runner, "docker-registry"),
                "args": ["serve", str(paths.registry_config)],
                "workDir": workdir,
            },
            {
                "name": "local-path-provisioner",
                "binary": _binary(runner, "local-path-provisioner"),
                "args": [
                    "--debug",
                    "start",
                    f"--config={paths.storage_config}",
                    f"--helper-pod-file={paths.helper_pod}",
                    f"--namespace={STORAGE_NAMESPACE}",
                    "--service-account-name=local-path-provisioner-service-account",
                    "--helper-image=busybox",
                    f"--kubeconfig={Path(workdir) / 'kubeconfig.yaml'}",
                ],
                "links": ["kube-apiserver"],
                "workDir": workdir,
            },
        ],
        # The binary runtime has kwok manage every node; here only the simulated ones, so
        # that a real kubelet's node is never taken over (kwokctl's kind runtime does the same).
        "componentsPatches": [
            {
                "name": "kwok-controller",
                "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false", "override": True},
                    {"key": "manage-nodes-with-annotation-selector", "value": SIMULATED},
                ],
            }
        ],
    }
    del kubeconfig  # kwokctl's own kubeconfig is in its workdir
    return [kwokctl, *kwok_stages()]


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


def write_files(runner: Runner, paths: LocalPaths, kubeconfig: Path) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.registry_data.mkdir(exist_ok=True)
    paths.volumes.mkdir(exist_ok=True)
    paths.registry_config.write_text(yaml.safe_dump(registry_config(paths)))
    config_map = next(o for o in _storage_release() if o["kind"] == "ConfigMap")
    paths.storage_config.write_text(storage_config(paths))
    paths.helper_pod.write_text(config_map["data"]["helperPod.yaml"])
    documents = kwokctl_config(runner, paths, kubeconfig)
    paths.kwokctl_config.write_text(yaml.safe_dump_all(documents, sort_keys=False))


# --- up and down ------------------------------------------------------------------------------


def kwok_node() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": KWOK_NODE,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": KWOK_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        },
    }


def exists(runner: Runner) -> bool:
    listed = runner.run("kwokctl", "get", "clusters").stdout.split()
    return KWOK_CLUSTER in listed


def local_up(runner: Runner, root: Path, log: Log = print, paths: LocalPaths | None = None) -> None:
    paths = paths or LocalPaths.default()
    runner.preflight(*LOCAL_TOOLS)
    kubeconfig = kubeconfig_path()
    if exists(runner):
        runner.run("kwokctl", "start", "cluster", "--name", KWOK_CLUSTER)
        log(f"cluster {KWOK_CLUSTER} already exists (kwokctl): started what was stopped")
    else:
        if port_open(names.REGISTRY_PORT):
            raise DevstackError(
                f"port {names.REGISTRY_PORT} is taken (a kind-registry container, or another "
                "registry): the local engine runs its own registry there; `invoke cluster.down` "
                "(kind) or stop what listens, then retry"
            )
        write_files(runner, paths, kubeconfig)
        runner.run(
            "kwokctl",
            "create",
            "cluster",
            "--name",
            KWOK_CLUSTER,
            "--config",
            str(paths.kwokctl_config),
            "--kubeconfig",
            str(kubeconfig),
            "--wait",
            "2m",
            timeout=300,
        )
        log(f"cluster {KWOK_CLUSTER} created (kwokctl, binary runtime)")
    runner.run(
        "kubectl",
        "config",
        "set-context",
        names.LOCAL_CONTEXT,
        f"--cluster={KWOK_CONTEXT}",
        f"--user={KWOK_CONTEXT}",
    )
    cli = ClusterCli(runner, names.LOCAL_CONTEXT)
    cli.kubectl("apply", "-f", str(root / "k8s" / "cluster" / "local" / "registry-hosting.yaml"))
    objects = [*storage_objects(paths), kwok_node()]
    cli.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    wait_ready(cli, log)


def wait_ready(cli: ClusterCli, log: Log, timeout: str = "120s") -> None:
    """The node Ready, the registry answering, metrics-server's APIService Available."""
    cli.kubectl("wait", "--for=condition=Ready", f"node/{KWOK_NODE}", f"--timeout={timeout}")
    deadline = time.monotonic() + 60
    while not port_open(names.REGISTRY_PORT):
        if time.monotonic() > deadline:
            raise CommandError(
                f"the registry does not answer on 127.0.0.1:{names.REGISTRY_PORT}: see "
                f"{LocalPaths.default().logs / 'registry.log'}"
            )
        time.sleep(0.2)
    cli.kubectl(
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        f"--timeout={timeout}",
    )
    log(f"node {KWOK_NODE} ready, registry on {names.REGISTRY_HOST}, metrics-server available")


def local_down(runner: Runner, log: Log = print, paths: LocalPaths | None = None) -> None:
    paths = paths or LocalPaths.default()
    runner.preflight("kwokctl", "kubectl")
    if exists(runner):
        runner.run(
            "kwokctl",
            "delete",
            "cluster",
            "--name",
            KWOK_CLUSTER,
            "--kubeconfig",
            str(kubeconfig_path()),
        )
        log(f"cluster {KWOK_CLUSTER} deleted")
    contexts = runner.run("kubectl", "config", "get-contexts", "-o", "name").stdout.split()
    if names.LOCAL_CONTEXT in contexts:
        runner.run("kubectl", "config", "delete-context", names.LOCAL_CONTEXT)
    if paths.root.exists():
        import shutil

        shutil.rmtree(paths.root)
        log(f"removed {paths.root} (the registry's images, the volumes)")

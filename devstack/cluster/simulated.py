"""The local engine's simulated node: kwok's controller plays the kubelet for the nodes that
carry its annotation (`--node kwok`: no container runs), with kwok's own default lifecycles
(from its module source, kept beside the binaries) and two of ours."""

from __future__ import annotations

from typing import Any

import yaml

from devstack.cluster.binaries import program_of
from devstack.core import names

KWOK_NODE = f"{names.LOCAL_CLUSTER}-kwok-0"
# kwok manages only the nodes that carry this annotation (never a real kubelet's node).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SIMULATED = f"{KWOK_NODE_ANNOTATION}=fake"
# A pod whose image tag ends so never becomes ready on the simulated node: how a test makes a
# rollout that cannot complete (kwok's stages decide a simulated pod's readiness).
UNREADY_TAG_SUFFIX = "-unready"
STORAGE_NAMESPACE = "local-path-storage"


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

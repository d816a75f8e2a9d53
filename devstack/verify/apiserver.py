"""A model of what a Kubernetes API server and its controllers do with applied objects, for the
replays of `tilt up` and `invoke deploy`. It keeps the rules that decide whether a first deploy
on an empty cluster comes up, and nothing else:

- a namespaced object is refused while its Namespace does not exist (`namespaces "x" not found`);
  within one apply, objects are created in the order the client sends them;
- the ServiceAccount controller creates `default` in every Namespace;
- a pod starts only when every ConfigMap, Secret (and key), image pull Secret, ServiceAccount and
  PersistentVolumeClaim it needs that is not `optional` exists; the kubelet and the workload
  controllers retry, so it starts as soon as they do, and never if they never come;
- StatefulSet volumeClaimTemplates are bound when the cluster has a default StorageClass;
- in a Namespace labelled `pod-security.kubernetes.io/enforce: restricted`, pods that break the
  profile are refused at creation (Pod Security admission), so they never run.

Sources: kubernetes.io/docs/concepts/configuration/secret (and configmap): "If the referenced
Secret does not exist ... the Pod will not start" unless `optional: true`; the ServiceAccount
admission plugin; kubernetes.io/docs/concepts/security/pod-security-admission.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devstack.verify.manifests import (
    WORKLOAD_KINDS,
    check_restricted,
    missing,
    pod_references,
    pod_spec,
)

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "IngressClass",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)
# What `kubeadm` (any cluster) and kind add at creation.
CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KIND_NAMESPACES = (*CLUSTER_NAMESPACES, "local-path-storage")


def key_of(obj: Obj) -> Key:
    kind = obj["kind"]
    meta = obj.get("metadata", {})
    namespace = "" if kind in CLUSTER_SCOPED else meta.get("namespace") or "default"
    return kind, namespace, meta["name"]


def describe(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass
class ApiServer:
    objects: dict[Key, Obj] = field(default_factory=dict)
    default_storage_class: bool = True

    @classmethod
    def cluster(cls, namespaces: Iterable[str] = CLUSTER_NAMESPACES) -> ApiServer:
        server = cls()
        for name in namespaces:
            server.commit({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return server

    @classmethod
    def kind(cls) -> ApiServer:
        """A new kind cluster: its namespaces, and local-path-provisioner's default class."""
        return cls.cluster(KIND_NAMESPACES)

    # --- reads ---------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        # The ServiceAccount controller makes `default` in every Namespace.
        if (kind, name) == ("ServiceAccount", "default") and self.get("Namespace", "", namespace):
            return {"kind": kind, "metadata": {"name": name, "namespace": namespace}}
        return self.objects.get((kind, "" if kind in CLUSTER_SCOPED else namespace, name))

    def keys(self) -> set[Key]:
        return set(self.objects)

    # --- writes --------------------------------------------------------------------------------

    def refusal(self, obj: Obj, visible: set[Key]) -> str | None:
        """Why the API server refuses `obj` when only `visible` objects exist, or None."""
        _, namespace, _ = key_of(obj)
        if namespace and ("Namespace", "", namespace) not in visible:
            return f'namespaces "{namespace}" not found'
        return None

    def commit(self, obj: Obj) -> None:
        self.objects[key_of(obj)] = obj

    # --- what the controllers and the kubelet make of it ----------------------------------------

    def workloads(self) -> Iterator[Obj]:
        return (o for o in self.objects.values() if o["kind"] in WORKLOAD_KINDS)

    def pod_blockers(self, workload: Obj) -> list[str]:
        """Why the pods of `workload` cannot start in the current state (empty: they start)."""
        _, namespace, _ = key_of(workload)
        blockers = []
        for ref in pod_references(pod_spec(workload)):
            why = missing(ref, self.get(ref.kind, namespace, ref.name))
            if why:
                blockers.append(why.rsplit(" (", 1)[0])
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            storage_class = claim.get("spec", {}).get("storageClassName")
            if storage_class is None and not self.default_storage_class:
                name = claim["metadata"]["name"]
                blockers.append(f"volume claim {name} has no StorageClass to bind it")
            elif storage_class and self.get("StorageClass", "", storage_class) is None:
                blockers.append(f"StorageClass {storage_class} does not exist")
        ns = self.get("Namespace", "", namespace) or {}
        labels = ns.get("metadata", {}).get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") == "restricted":
            blockers += [
                f"refused by Pod Security admission (restricted): {problem}"
                for problem in check_restricted([workload])
            ]
        return blockers

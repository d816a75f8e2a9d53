"""The rendered manifests checked as a cluster would check them, without one: wiring (selectors,
ports, probes, the HPA, ConfigMap and Secret references), the Pod Security restricted profile,
and what the NetworkPolicies let through.

Each check returns a list of problems (empty when fine), so a test can both assert a clean
result and prove, on a broken copy, that the check would catch the mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from devstack.cluster.render import (  # the accessors, re-exported for the checks' callers
    Obj,
    by_kind,
    find,
    pod_labels,
    pod_spec,
    workloads,
)
from devstack.core.names import IMAGE

# Pod Security Standards, restricted profile: the volume types it allows.
EXTERNAL = "(outside the namespace)"


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _label_selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions are not used in these manifests")
    return _matches(selector.get("matchLabels", {}), labels)


# --- wiring -----------------------------------------------------------------------------------


def check_service_selectors(objs: list[Obj]) -> list[str]:
    problems = []
    for service in by_kind(objs, "Service"):
        selector = service["spec"].get("selector", {})
        if not any(_matches(selector, pod_labels(w)) for w in workloads(objs)):
            problems.append(
                f"Service {service['metadata']['name']}: selector {selector} matches no pod"
            )
    return problems


def _container_ports(workload: Obj) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for container in pod_spec(workload)["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def check_target_ports(objs: list[Obj]) -> list[str]:
    problems = []
    for service in by_kind(objs, "Service"):
        selector = service["spec"].get("selector", {})
        targets = [w for w in workloads(objs) if _matches(selector, pod_labels(w))]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in targets:
                if target not in _container_ports(workload):
                    service_name, workload_name = (
                        service["metadata"]["name"],
                        workload["metadata"]["name"],
                    )
                    problems.append(
                        f"Service {service_name}: targetPort {target!r} is not a port "
                        f"of {workload['kind']} {workload_name}"
                    )
    return problems


def check_ingress_backends(objs: list[Obj]) -> list[str]:
    """Every Ingress backend names a Service of the namespace and a port it has (by name or
    number). No ingress controller runs in the cluster tier, so nothing real checks this first."""
    problems = []
    for ingress in by_kind(objs, "Ingress"):
        spec = ingress["spec"]
        backends = [spec["defaultBackend"]] if "defaultBackend" in spec else []
        backends += [
            path["backend"]
            for rule in spec.get("rules", [])
            for path in rule.get("http", {}).get("paths", [])
        ]
        for backend in (b["service"] for b in backends if "service" in b):
            service = find(objs, "Service", backend["name"])
            wanted = backend["port"].get("name", backend["port"].get("number"))
            ports = {p.get("name") for p in service["spec"]["ports"]} if service else set()
            ports |= {p["port"] for p in service["spec"]["ports"]} if service else set()
            if wanted not in ports:
                problems.append(
                    f"Ingress {ingress['metadata']['name']}: backend {backend['name']}:{wanted!r} "
                    "is not a port of a Service here"
                )
    return problems


def _probes(container: Obj) -> Iterator[tuple[str, Obj]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in container:
            yield kind, container[kind]


def check_probes(objs: list[Obj], agent_routes: set[str], agent_image: str = IMAGE) -> list[str]:
    """Every probe targets a declared port; the agent's HTTP probes hit routes the app serves."""
    problems = []
    for workload in workloads(objs):
        ports = _container_ports(workload)
        for container in pod_spec(workload)["containers"]:
            is_agent = container["image"].split("/")[-1].split(":")[0].split("@")[0] == agent_image
            for kind, probe in _probes(container):
                action = probe.get("httpGet") or probe.get("tcpSocket")
                if action and action["port"] not in ports:
                    problems.append(
                        f"{container['name']} {kind}: port {action['port']!r} is not declared"
                    )
                if is_agent and "httpGet" in probe and probe["httpGet"]["path"] not in agent_routes:
                    path = probe["httpGet"]["path"]
                    problems.append(f"{container['name']} {kind}: {path} is not a route of the app")
    return problems


def check_hpa(objs: list[Obj]) -> list[str]:
    problems = []
    for hpa in by_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = find(objs, ref["kind"], ref["name"])
        name = hpa["metadata"]["name"]
        if target is None:
            problems.append(f"HPA {name}: target {ref['kind']}/{ref['name']} does not exist")
            continue
        if "replicas" in target["spec"]:
            problems.append(
                f"HPA {name}: {ref['kind']} {ref['name']} sets spec.replicas and fights the HPA"
            )
        uses_cpu = any(
            m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])
        )
        for container in pod_spec(target)["containers"]:
            if uses_cpu and "cpu" not in container.get("resources", {}).get("requests", {}):
                problems.append(f"HPA {name}: container {container['name']} has no CPU request")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"HPA {name}: minReplicas above maxReplicas")
    return problems


@dataclass(frozen=True)
class Reference:
    """Something a pod needs to exist before it starts (kubernetes.io/docs: a missing ConfigMap or
    Secret, or key, keeps the pod from starting unless the reference is `optional`)."""

    kind: str  # ConfigMap, Secret, PersistentVolumeClaim or ServiceAccount
    name: str
    keys: tuple[str, ...]
    optional: bool
    where: str


def pod_references(spec: Obj) -> Iterator[Reference]:
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        name = container["name"]
        for source in container.get("envFrom", []):
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if ref := source.get(field):
                    yield Reference(kind, ref["name"], (), bool(ref.get("optional")), name)
        for env in container.get("env", []):
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if ref := env.get("valueFrom", {}).get(field):
                    optional = bool(ref.get("optional"))
                    where = f"{name}: {env['name']}"
                    yield Reference(kind, ref["name"], (ref["key"],), optional, where)
    for volume in spec.get("volumes", []):
        where = f"volume {volume['name']}"
        for source in [volume, *volume.get("projected", {}).get("sources", [])]:
            for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if ref := source.get(field):
                    target = ref.get("secretName") or ref.get("name")
                    keys = tuple(item["key"] for item in ref.get("items", []))
                    yield Reference(kind, target, keys, bool(ref.get("optional")), where)
        if claim := volume.get("persistentVolumeClaim"):
            yield Reference("PersistentVolumeClaim", claim["claimName"], (), False, where)
    for pull in spec.get("imagePullSecrets", []):
        yield Reference("Secret", pull["name"], (), False, "imagePullSecrets")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    yield Reference("ServiceAccount", account, (), False, "serviceAccountName")


def data_keys(obj: Obj) -> set[str]:
    fields = ("data", "stringData") if obj["kind"] == "Secret" else ("data", "binaryData")
    return {key for f in fields for key in obj.get(f) or {}}


def missing(ref: Reference, found: Obj | None) -> str | None:
    """Why `ref` keeps the pod from starting, given what was `found` under its name."""
    if ref.optional:
        return None
    if found is None:
        return f"{ref.kind} {ref.name} does not exist ({ref.where})"
    absent = [key for key in ref.keys if key not in data_keys(found)]
    return f"{ref.kind} {ref.name} has no key {absent[0]} ({ref.where})" if absent else None


def check_config_refs(objs: list[Obj]) -> list[str]:
    """Every ConfigMap and Secret (and key) a pod needs is in the manifests, unless optional."""
    problems = []
    for workload in workloads(objs):
        for ref in pod_references(pod_spec(workload)):
            if ref.kind in ("ConfigMap", "Secret"):
                why = missing(ref, find(objs, ref.kind, ref.name))
                if why:
                    problems.append(f"{workload['kind']} {workload['metadata']['name']}: {why}")
    return problems


# --- network policy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    port: int


def _policies_selecting(objs: list[Obj], labels: dict[str, str], direction: str) -> list[Obj]:
    return [
        p
        for p in by_kind(objs, "NetworkPolicy")
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and _label_selector_matches(p["spec"].get("podSelector", {}), labels)
    ]


def _peer_matches(peers: list[Obj] | None, labels: dict[str, str] | None) -> bool:
    """`labels` None is a peer outside the namespace (another namespace, or outside the cluster)."""
    if not peers:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            if labels is None:
                return True
            continue
        if "namespaceSelector" in peer:
            continue  # other namespaces (kube-dns); never a pod of this namespace here
        if labels is not None and _label_selector_matches(peer.get("podSelector", {}), labels):
            return True
    return False


def _port_matches(ports: list[Obj] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


def allowed(
    objs: list[Obj], source: dict[str, str] | None, destination: dict[str, str], port: int
) -> bool:
    ingress = _policies_selecting(objs, destination, "Ingress")
    if ingress and not any(
        _peer_matches(rule.get("from"), source) and _port_matches(rule.get("ports"), port)
        for policy in ingress
        for rule in policy["spec"].get("ingress", [])
    ):
        return False
    if source is None:
        return True
    egress = _policies_selecting(objs, source, "Egress")
    return not egress or any(
        _peer_matches(rule.get("to"), destination) and _port_matches(rule.get("ports"), port)
        for policy in egress
        for rule in policy["spec"].get("egress", [])
    )


def allowed_flows(objs: list[Obj]) -> set[Flow]:
    """Every (source, destination, port) the NetworkPolicies admit between the workloads of the
    namespace, and from outside it, over the destinations' container ports."""
    pods = {w["metadata"]["name"]: pod_labels(w) for w in workloads(objs)}
    flows = set()
    for destination, labels in pods.items():
        ports = {p for p in _container_ports(find_workload(objs, destination)).values()}
        for port in ports:
            sources: dict[str, dict[str, str] | None] = {**pods, EXTERNAL: None}
            for source, source_labels in sources.items():
                if source != destination and allowed(objs, source_labels, labels, port):
                    flows.add(Flow(source, destination, port))
    return flows


def check_network_policy(objs: list[Obj], agent: str, stores: dict[str, int]) -> list[str]:
    """Only the agent reaches the stores, the agent reaches nothing else in the namespace, and the
    agent's HTTP port is open to callers from outside the namespace."""
    flows = allowed_flows(objs)
    problems = [
        f"{agent} cannot reach {store}:{port}"
        for store, port in stores.items()
        if Flow(agent, store, port) not in flows
    ]
    problems += [
        f"{f.source} reaches the store {f.destination}:{f.port}"
        for f in sorted(flows, key=lambda f: (f.source, f.destination, f.port))
        if f.destination in stores and f.source != agent
    ]
    problems += [
        f"{agent} reaches {f.destination}:{f.port}, which is not a store"
        for f in sorted(flows, key=lambda f: (f.destination, f.port))
        if f.source == agent and f.destination not in stores
    ]
    if not any(f.source == EXTERNAL and f.destination == agent for f in flows):
        problems.append(f"nothing outside the namespace can reach {agent}")
    return problems


def find_workload(objs: list[Obj], name: str) -> Obj:
    return next(w for w in workloads(objs) if w["metadata"]["name"] == name)

"""Replay `tilt up` on a cluster model: Tilt's grouping of objects into resources, then its
engine's order of work, against the API server's rules (`apiserver`).

Grouping follows tilt-dev/tilt at 2fa1737 (internal/tiltfile/tiltfile_state.go):
- `assembleK8sByWorkload`: an object whose pod template uses an image Tilt builds is a workload;
  each workload is a resource named after it, and the Services whose selector matches its pod
  labels in its namespace join it (`k8s.FilterByMatchesPodTemplateSpec`, Services only);
- `assembleK8sUnresourced`: every other object with a pod template becomes a resource too, with
  its Services;
- `k8s_resource(objects=...)` then moves objects, by `name[:kind[:namespace]]` fragments matched
  case-insensitively (`k8s.SelectorFromString`), into a resource (a new one with `new_name`);
- whatever is left is the `uncategorized` resource (`loadManifests`), whose pods Tilt ignores.

Order follows internal/engine/buildcontrol/build_control.go (`NextTargetToBuild`):
- local resources first, then `uncategorized`, then resources without an image build, then the
  rest (`NextUnbuiltTargetToBuild`); up to `max_parallel_updates` (3) at once;
- while `uncategorized` is being applied every Kubernetes resource waits
  (`IsBuildingUncategorizedYAML` / `HoldK8sTargets`);
- a resource waits until each of its `resource_deps` has been ready once
  (`HoldTargetsWaitingOnDependencies`, `waitingOnDependencies`);
- a resource's objects go in one upsert, sorted by kind (`k8s.SortedEntities`, Namespace first)
  and sent batch by batch; the first failing batch fails the update
  (internal/k8s/client.go, `Upsert`), and a failed update is not retried until a watched file
  changes;
- a resource is ready when its pods are (`pod_readiness` "wait"), or once applied when it has no
  pods to wait for ("ignore": `uncategorized` and objects grouped by hand without images).

Updates that Tilt may run at the same time are not ordered: an update may rely only on objects of
resources that finished before it could start (its transitive `resource_deps`, `uncategorized`,
and local resources), never on a sibling that merely tends to be faster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from devstack.verify.apiserver import ApiServer, Key, describe, key_of
from devstack.verify.tiltfile import TiltfileError, TiltfileModel

Obj = dict[str, Any]
UNCATEGORIZED = "uncategorized"
# Kind order of an upsert: internal/kustomize/ordering.go (OrderFirst); other kinds after these.
ORDER_FIRST = (
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
    "MutatingWebhookConfiguration", "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole",
    "RoleBinding", "ClusterRoleBinding", "PersistentVolume", "PersistentVolumeClaim", "ConfigMap",
    "Secret", "Service", "LimitRange", "PriorityClass", "Deployment", "StatefulSet", "CronJob",
    "PodDisruptionBudget",
)  # fmt: skip
_ORDER = {kind: index - len(ORDER_FIRST) for index, kind in enumerate(ORDER_FIRST)}


@dataclass
class Resource:
    name: str
    type: Literal["k8s", "local"]
    entities: list[Obj] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # image refs Tilt builds for it
    resource_deps: list[str] = field(default_factory=list)
    auto_init: bool = True
    pod_readiness: Literal["wait", "ignore"] = "wait"
    allow_parallel: bool = False
    labels: list[str] = field(default_factory=list)
    manually_grouped: bool = False

    @property
    def deploy_only(self) -> bool:
        return self.type == "k8s" and not self.images


def _image_name(image: str) -> str:
    """`repo/name:tag@digest` -> `repo/name`, for matching against docker_build refs."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/library/")


def _pod_template(obj: Obj) -> Obj | None:
    spec = obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return template if isinstance(template, dict) and "spec" in template else None


def _images(obj: Obj) -> list[str]:
    template = _pod_template(obj)
    if template is None:
        return []
    spec = template["spec"]
    return [c["image"] for c in [*spec.get("initContainers", []), *spec.get("containers", [])]]


def _namespace(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


def _matching_services(workload: Obj, pool: list[Obj]) -> list[Obj]:
    labels = (_pod_template(workload) or {}).get("metadata", {}).get("labels", {})
    matched = []
    for obj in pool:
        selector = obj.get("spec", {}).get("selector") or {}
        if (
            obj.get("kind") == "Service"
            and selector
            and all(labels.get(k) == v for k, v in selector.items())
            and _namespace(obj) == _namespace(workload)
        ):
            matched.append(obj)
    return matched


def _fragment_matches(fragment: str, obj: Obj) -> bool:
    parts = fragment.lower().split(":")
    if not 1 <= len(parts) <= 3:
        raise TiltfileError(f"object selector {fragment!r}: 1 to 3 colon-separated parts")
    actual = [obj["metadata"]["name"].lower(), obj["kind"].lower(), _namespace(obj).lower()]
    return all(want == have for want, have in zip(parts, actual, strict=False))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def assemble(model: TiltfileModel) -> list[Resource]:
    """The resources Tilt makes of a loaded Tiltfile, in Tilt's manifest order."""
    if model.called("k8s_kind") or model.called("workload_to_resource_function"):
        raise TiltfileError("k8s_kind and workload_to_resource_function are not modelled")
    built = {_image_name(str(c.args["ref"])) for c in model.called("docker_build")}
    pool = list(model.entities)
    resources: dict[str, Resource] = {}

    def take(objs: Iterable[Obj]) -> None:
        for obj in objs:
            pool.remove(obj)

    # assembleK8sByWorkload, then assembleK8sUnresourced.
    for uses_built_image in (True, False):
        for obj in list(pool):
            if obj not in pool or _pod_template(obj) is None:
                continue
            images = [i for i in _images(obj) if _image_name(i) in built]
            if bool(images) != uses_built_image:
                continue
            name = obj["metadata"]["name"].lower()
            if name in resources:
                raise TiltfileError(f"two workloads named {name}: not modelled")
            resource = Resource(name, "k8s", [obj], sorted({_image_name(i) for i in images}))
            take([obj])
            services = _matching_services(obj, pool)
            resource.entities += services
            take(services)
            resources[name] = resource

    for call in model.called("k8s_resource"):
        args = call.args
        workload, new_name = args.get("workload") or "", args.get("new_name") or ""
        objects = _as_list(args.get("objects"))
        if not workload:
            if not new_name or not objects:
                raise TiltfileError("k8s_resource needs a workload, or new_name and objects")
            workload = new_name
            resources.setdefault(new_name, Resource(new_name, "k8s", manually_grouped=True))
        resource = resources.get(workload)
        if resource is None:
            raise TiltfileError(
                f"k8s_resource specified unknown resource {workload!r}. "
                f"known k8s resources: {', '.join(resources)}"
            )
        for fragment in objects:
            matches = [o for o in pool if _fragment_matches(str(fragment), o)]
            if len(matches) != 1:
                found = "no object" if not matches else f"{len(matches)} objects"
                raise TiltfileError(
                    f"k8s_resource({workload!r}): {found} in the remaining YAML match {fragment!r}"
                )
            resource.entities += matches
            take(matches)
        resource.resource_deps += [str(d) for d in _as_list(args.get("resource_deps"))]
        resource.labels += [str(label) for label in _as_list(args.get("labels"))]
        if args.get("auto_init") is not None:
            resource.auto_init = bool(args["auto_init"])
        if args.get("pod_readiness"):
            resource.pod_readiness = args["pod_readiness"]
        elif resource.manually_grouped and not resource.images:
            resource.pod_readiness = "ignore"  # inferPodReadinessMode
        if new_name and new_name != resource.name:
            del resources[resource.name]
            resource.name = new_name
            resources[new_name] = resource

    manifests = list(resources.values())
    for call in model.called("local_resource"):
        a = call.args
        manifests.append(
            Resource(
                str(a["name"]),
                "local",
                resource_deps=[str(d) for d in _as_list(a.get("resource_deps"))],
                auto_init=a.get("auto_init") is not False,
                pod_readiness="ignore",
                allow_parallel=bool(a.get("allow_parallel")),
                labels=[str(label) for label in _as_list(a.get("labels"))],
            )
        )
    if pool:
        manifests.append(Resource(UNCATEGORIZED, "k8s", list(pool), pod_readiness="ignore"))

    names = {m.name for m in manifests}
    for manifest in manifests:
        for dep in manifest.resource_deps:
            if dep not in names:
                raise TiltfileError(f"resource {manifest.name} depends on unknown {dep!r}")
    return manifests


# --- the replay ------------------------------------------------------------------------------


@dataclass
class Outcome:
    applied: bool = False
    error: str | None = None
    refused: Key | None = None  # the object whose refusal failed the apply
    ready: bool = False
    started_round: int | None = None


@dataclass
class Replay:
    resources: list[Resource]
    outcomes: dict[str, Outcome]
    rounds: list[list[str]]  # what Tilt starts together, round by round
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _sorted_for_upsert(entities: list[Obj]) -> list[list[Obj]]:
    """k8s.SortedEntities, then toParallelizableBatches: one batch per run of equal kind order."""
    ordered = sorted(entities, key=lambda o: _ORDER.get(o["kind"], 0))
    batches: list[list[Obj]] = []
    for obj in ordered:
        rank = _ORDER.get(obj["kind"], 0)
        if batches and _ORDER.get(batches[-1][0]["kind"], 0) == rank:
            batches[-1].append(obj)
        else:
            batches.append([obj])
    return batches


def _ordered_before(resource: Resource, by_name: dict[str, Resource]) -> set[str]:
    """Resources Tilt guarantees to have finished before `resource` starts."""
    before: set[str] = set()
    stack = list(resource.resource_deps)
    while stack:
        name = stack.pop()
        if name not in before:
            before.add(name)
            stack += by_name[name].resource_deps
    if resource.type == "k8s" and resource.name != UNCATEGORIZED:
        before |= {n for n, r in by_name.items() if r.name == UNCATEGORIZED}
        before |= {n for n, r in by_name.items() if r.type == "local" and r.auto_init}
    return before


class _Engine:
    def __init__(self, resources: list[Resource], server: ApiServer, max_parallel: int) -> None:
        self.resources = resources
        self.by_name = {r.name: r for r in resources}
        self.server = server
        self.max_parallel = max_parallel
        self.initial: set[Key] = server.keys()
        self.outcomes = {r.name: Outcome() for r in resources}
        self.committed: dict[str, set[Key]] = {r.name: set() for r in resources}

    def _waiting_on(self, resource: Resource) -> list[str]:
        return [d for d in resource.resource_deps if not self.outcomes[d].ready]

    def _next(self, building: list[Resource]) -> Resource | None:
        """NextTargetToBuild, for a first `tilt up`: every auto_init resource is unbuilt."""
        if any(r.type == "local" and not r.allow_parallel for r in building):
            return None
        candidates = [
            r
            for r in self.resources
            if r.auto_init and self.outcomes[r.name].started_round is None and r not in building
        ]
        eligible = []
        for r in candidates:
            if building and r.type == "local" and not r.allow_parallel:
                continue
            if any(b.name == UNCATEGORIZED for b in building) and r.type == "k8s":
                continue
            if self._waiting_on(r):
                continue
            eligible.append(r)
        for group in (
            [r for r in eligible if r.type == "local"],
            [r for r in eligible if r.name == UNCATEGORIZED],
            [r for r in eligible if r.deploy_only],
            eligible,
        ):
            if group:
                return group[0]
        return None

    def _apply(self, resource: Resource) -> None:
        outcome = self.outcomes[resource.name]
        visible = set(self.initial)
        for name in _ordered_before(resource, self.by_name):
            visible |= self.committed[name]
        for batch in _sorted_for_upsert(resource.entities):
            refusals = [(o, self.server.refusal(o, visible)) for o in batch]
            failed = [(o, why) for o, why in refusals if why]
            for obj, why in refusals:
                if not why:
                    self.server.commit(obj)
                    self.committed[resource.name].add(key_of(obj))
            if failed:
                obj, why = failed[0]
                outcome.refused = key_of(obj)
                outcome.error = f"{describe(outcome.refused)}: {why}"
                return
            visible |= {key_of(o) for o in batch}
        outcome.applied = True

    def _settle(self) -> bool:
        """The kubelet and controllers retry: mark ready whatever can run now."""
        changed = False
        for resource in self.resources:
            outcome = self.outcomes[resource.name]
            if not outcome.applied or outcome.ready:
                continue
            if resource.pod_readiness == "ignore" or not self._blockers(resource):
                outcome.ready = changed = True
        return changed

    def _blockers(self, resource: Resource) -> list[str]:
        return [
            f"{w['kind']} {w['metadata']['name']}: {why}"
            for w in resource.entities
            if _pod_template(w) is not None and w["kind"] != "Pod"
            for why in self.server.pod_blockers(w)
        ]

    def run(self) -> Replay:
        rounds: list[list[str]] = []
        while True:
            building: list[Resource] = []
            while len(building) < self.max_parallel:
                chosen = self._next(building)
                if chosen is None:
                    break
                building.append(chosen)
            for resource in building:
                self.outcomes[resource.name].started_round = len(rounds)
                if resource.type == "k8s":
                    self._apply(resource)
                else:
                    self.outcomes[resource.name].applied = True  # a local command: succeeded
            if building:
                rounds.append([r.name for r in building])
            if not self._settle() and not building:
                break
        return Replay(self.resources, self.outcomes, rounds, self._problems())

    def _owner_of(self, key: Key) -> str | None:
        return next(
            (r.name for r in self.resources if any(key_of(o) == key for o in r.entities)), None
        )

    def _problems(self) -> list[str]:
        problems = []
        for resource in self.resources:
            outcome = self.outcomes[resource.name]
            if not resource.auto_init or outcome.ready:
                continue
            if outcome.error:
                namespace = outcome.refused[1] if outcome.refused else ""
                owner = self._owner_of(("Namespace", "", namespace))
                hint = (
                    f" (Namespace {namespace} is in resource {owner}, which Tilt does not "
                    f"order before {resource.name})"
                    if owner and owner != resource.name
                    else ""
                )
                problems.append(
                    f"{resource.name}: the apply fails: {outcome.error}{hint}; Tilt does not "
                    "retry a failed apply until a file changes"
                )
            elif outcome.applied:
                problems.append(
                    f"{resource.name}: never ready: {'; '.join(self._blockers(resource))}"
                )
            else:
                waiting = ", ".join(self._waiting_on(resource)) or "a resource that never started"
                problems.append(f"{resource.name}: never starts: it waits for {waiting}")
        return problems


def replay_tilt_up(model: TiltfileModel, server: ApiServer) -> Replay:
    """What a first `tilt up` does on `server` with the loaded Tiltfile `model`."""
    return _Engine(assemble(model), server, model.max_parallel_updates).run()


# --- `kubectl apply -f -` ----------------------------------------------------------------------


def replay_kubectl_apply(stream: list[Obj], server: ApiServer) -> list[str]:
    """`kubectl apply` of a stream on `server`: objects in stream order, an error does not stop
    the rest (kubectl reports them at the end), then every workload's pods must start."""
    problems = []
    visible = server.keys()
    for obj in stream:
        why = server.refusal(obj, visible)
        if why:
            problems.append(f"kubectl apply: {describe(key_of(obj))}: {why}")
            continue
        server.commit(obj)
        visible.add(key_of(obj))
    for obj in stream:
        if _pod_template(obj) is not None and key_of(obj) in visible:
            problems += [
                f"{obj['kind']} {obj['metadata']['name']} never ready: {why}"
                for why in server.pod_blockers(obj)
            ]
    return problems

"""The local cluster as the replays see it: a new kind cluster, what `invoke cluster.up` adds to
it, and the `kubectl get` answers the Tiltfile's preflight reads through `local()`."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from devstack.core.names import CONTEXT
from devstack.verify.apiserver import ApiServer
from devstack.verify.tiltfile import LocalCommandFailed, World

METRICS_API = "v1beta1.metrics.k8s.io"
# kubectl's resource names for the kinds the preflight reads, and how `-o name` prints them.
_RESOURCES = {
    "configmap": ("ConfigMap", "configmap"),
    "apiservice": ("APIService", "apiservice.apiregistration.k8s.io"),
    "namespace": ("Namespace", "namespace"),
}
UNREACHABLE = "|| echo unreachable"


def after_cluster_up(server: ApiServer, root: Path) -> ApiServer:
    """What `invoke cluster.up` leaves (devstack/cluster/kind.py, `install_addons`): the
    local-registry-hosting ConfigMap from k8s/cluster, and metrics-server, whose APIService it
    waits to be Available."""
    hosting = yaml.safe_load((root / "k8s" / "cluster" / "local-registry-hosting.yaml").read_text())
    for obj in (
        hosting,
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": METRICS_API}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "metrics-server", "namespace": "kube-system"}},
    ):  # fmt: skip
        why = server.refusal(obj, server.keys())
        if why:
            raise AssertionError(f"cluster.up could not create {obj['kind']}: {why}")
        server.commit(obj)
    return server


def kubectl_world(server: ApiServer | None, cluster_context: str = CONTEXT) -> World:
    """Answers `kubectl --context C [-n NS] get KIND NAME -o name --ignore-not-found` from
    `server`, as kubectl does: the name when it exists, nothing when it does not; a context that
    does not reach `server` (or no server at all) fails, which `|| echo unreachable` turns into
    the word `unreachable`. Any other command is refused, so every `local()` must be modelled."""

    def run(command: str) -> str:
        fallback = command.endswith(UNREACHABLE)
        argv = shlex.split(command.removesuffix(UNREACHABLE).replace("2>/dev/null", ""))
        if not argv or argv[0] != "kubectl":
            raise LocalCommandFailed(f"not modelled: {command}")
        context, namespace, rest = "", "default", []
        args = iter(argv[1:])
        for arg in args:
            if arg == "--context":
                context = next(args)
            elif arg in ("-n", "--namespace"):
                namespace = next(args)
            else:
                rest.append(arg)
        if rest[:1] != ["get"] or not {"-o", "name", "--ignore-not-found"} <= set(rest):
            raise LocalCommandFailed(f"not modelled: {command}")
        kind_arg, name = rest[1], rest[2]
        if server is None or context != cluster_context:
            if fallback:
                return "unreachable\n"
            raise LocalCommandFailed(f"context {context!r} does not reach a cluster")
        kind, printed = _RESOURCES[kind_arg]
        found = server.get(kind, namespace, name)
        return f"{printed}/{name}\n" if found else ""

    return run

"""The local cluster: `invoke cluster.up` / `cluster.down` (kind, or `--engine local`: the pinned
binaries run by kwokctl), `invoke cluster.build` (those binaries), and `invoke up` / `down` (the
cluster and Tilt's inner loop)."""

from __future__ import annotations

from invoke import Context

from devstack.cluster import node as real_node
from devstack.cluster.binaries import build_all
from devstack.cluster.kind import CLUSTER_TOOLS, ClusterCli, cluster_down, cluster_up
from devstack.cluster.local import local_down, local_up, tools_for
from devstack.cluster.tilt import tilt_build_env, tilt_ci, tilt_down, tilt_up
from devstack.core.console import console, table
from devstack.core.errors import UsageError
from devstack.core.names import CONTEXT, LOCAL_CONTEXT, REGISTRY_HOST
from devstack.core.tools import inspect
from tasks._base import ROOT, runner, task
from tasks.image import docker

ENGINES = {"kind": CONTEXT, "local": LOCAL_CONTEXT}
ENGINE_HELP = "kind (default: a kind cluster, the laptop path) or local (the pinned binaries on "
ENGINE_HELP += "this machine, run by kwokctl: for where kind cannot run)"
NODE_HELP = "the local engine's node: real (default: a kubelet with containerd; needs root) or "
NODE_HELP += "kwok (simulated: no container runs)"


def context_of(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: one of {', '.join(ENGINES)}")
    return ENGINES[engine]


def bring_up(cli: ClusterCli, engine: str, node: str) -> None:
    if engine != "local":
        cluster_up(cli, ROOT, console.print)
        return

    def push_images() -> None:
        client = docker()
        stores = real_node.store_standins(client, ROOT, console.print)
        real_node.push_node_images(client, cli.runner, stores, console.print)

    local_up(cli.runner, ROOT, console.print, node=node, push_images=push_images)


@task(name="up", help={"engine": ENGINE_HELP, "node": NODE_HELP})
def create(c: Context, engine: str = "kind", node: str = "real") -> None:
    """Create (or complete) the local cluster with its registry and metrics-server."""
    cli = ClusterCli(runner(), context_of(engine))
    bring_up(cli, engine, node)
    console.print(f"[green]cluster ready[/]: context {cli.context}, registry {REGISTRY_HOST}")


@task(name="down", help={"engine": ENGINE_HELP})
def delete(c: Context, engine: str = "kind") -> None:
    """Delete the local cluster and its registry."""
    cli = ClusterCli(runner(), context_of(engine))
    if engine == "local":
        local_down(cli.runner, console.print)
    else:
        cluster_down(cli, console.print)


@task(name="build")
def build_binaries(c: Context) -> None:
    """Build the local engine's programs from source (Kubernetes, etcd, kwok, Tilt,
    metrics-server, local-path-provisioner: the pinned versions) into the cache outside the
    repository; what is already there is reused."""
    results = build_all(runner(), console.print)
    rows = [
        (
            f"{r.program.name} v{r.program.version}",
            ", ".join(r.program.commands),
            "cached" if r.cached else f"built in {r.seconds:.0f} s",
        )
        for r in results
    ]
    console.print(table("the local engine's binaries", ("program", "binaries", "status"), rows))
    console.print(f"in {results[0].program.folder.parent}")


@task(
    name="up",
    help={
        "ci": "run `tilt ci` instead: exit once every resource is ready, fail if one is not",
        "engine": ENGINE_HELP,
        "node": NODE_HELP,
        "offline": "Tilt builds on the stand-in bases (no registry needed), as `invoke build "
        "--offline` does",
    },
)
def inner_loop_up(
    c: Context, ci: bool = False, engine: str = "kind", offline: bool = False, node: str = "real"
) -> None:
    """cluster.up, then `tilt up` (the Tilt UI on http://localhost:10350)."""
    cli = ClusterCli(runner(), context_of(engine))
    cli.runner.preflight(*(tools_for(node) if engine == "local" else CLUSTER_TOOLS), "tilt")
    build_env = tilt_build_env(docker(), offline)
    bring_up(cli, engine, node)
    if ci:
        tilt_ci(cli.runner, ROOT, cli.context, extra_env=build_env)
    else:
        tilt_up(cli.runner, ROOT, cli.context, extra_env=build_env)


@task(name="down", help={"engine": ENGINE_HELP})
def inner_loop_down(c: Context, engine: str = "kind") -> None:
    """`tilt down` (if Tilt is installed), then cluster.down."""
    cli = ClusterCli(runner(), context_of(engine))
    if inspect("tilt").ok:
        tilt_down(cli.runner, ROOT, cli.context)
    if engine == "local":
        local_down(cli.runner, console.print)
    else:
        cluster_down(cli, console.print)

"""The local cluster: `invoke cluster.up` / `cluster.down`, and `invoke up` / `down` (the cluster
and Tilt's inner loop)."""

from __future__ import annotations

from invoke import Context

from devstack.cluster.kind import CLUSTER_TOOLS, ClusterCli, cluster_down, cluster_up
from devstack.cluster.tilt import tilt_ci, tilt_down, tilt_up
from devstack.core.console import console
from devstack.core.names import CONTEXT, REGISTRY_HOST
from devstack.core.tools import inspect
from tasks._base import ROOT, runner, task


@task(name="up")
def create(c: Context) -> None:
    """Create (or complete) the kind cluster `vaia` with the local registry and metrics-server."""
    cluster_up(ClusterCli(runner()), ROOT, console.print)
    console.print(f"[green]cluster ready[/]: context {CONTEXT}, registry {REGISTRY_HOST}")


@task(name="down")
def delete(c: Context) -> None:
    """Delete the kind cluster and the registry container."""
    cluster_down(ClusterCli(runner()), console.print)


@task(
    name="up",
    help={"ci": "run `tilt ci` instead: exit once every resource is ready, fail if one is not"},
)
def inner_loop_up(c: Context, ci: bool = False) -> None:
    """cluster.up, then `tilt up` (the Tilt UI on http://localhost:10350)."""
    cli = ClusterCli(runner())
    cli.runner.preflight(*CLUSTER_TOOLS, "tilt")
    cluster_up(cli, ROOT, console.print)
    if ci:
        tilt_ci(cli.runner, ROOT)
    else:
        tilt_up(cli.runner, ROOT)


@task(name="down")
def inner_loop_down(c: Context) -> None:
    """`tilt down` (if Tilt is installed), then cluster.down."""
    cli = ClusterCli(runner())
    if inspect("tilt").ok:
        tilt_down(cli.runner, ROOT)
    cluster_down(cli, console.print)

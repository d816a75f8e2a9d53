"""The local cluster: `invoke cluster.up` / `cluster.down` (kind and its registry), `invoke
cluster.build` (the pinned programs, and kind's node image), and `invoke up` / `down` (the cluster
and Tilt's inner loop)."""

from __future__ import annotations

import time
from pathlib import Path

from invoke.context import Context

from devstack.cluster import mirror, nodeimage
from devstack.cluster.binaries import build_all
from devstack.cluster.cli import ClusterCli
from devstack.cluster.kind import CLUSTER_TOOLS, UpOptions, cluster_down, cluster_up
from devstack.cluster.tilt import tilt_build_env, tilt_ci, tilt_down, tilt_up
from devstack.core.console import console, table
from devstack.core.names import REGISTRY_HOST
from devstack.core.tools import inspect
from devstack.host import privileged
from devstack.image import compose
from tasks._base import ROOT, runner, task
from tasks.image import docker

NODE_IMAGE_HELP = "kind's node image for every node (default: kind-config.yaml's); "
NODE_IMAGE_HELP += f"`invoke cluster.build --node-image` builds {nodeimage.NODE_IMAGE} here"
OFFLINE_HELP = "nothing can be pulled: the registry, Redis, Chroma and its proxy from stand-ins "
OFFLINE_HELP += "(docker.io served by the local registry), Tilt building on the stand-in bases"


def kind_options(node_image: str, offline: bool) -> UpOptions:
    """What this host and this run need beyond kind-config.yaml."""
    return UpOptions(
        node_image=node_image or None,
        offline=offline,
        registry_image=compose.registry_standin(docker(), console.print)
        if offline
        else "registry:2",
        restrict_oom_score_adj="CAP_SYS_RESOURCE" in privileged.missing_capabilities(),
    )


def offline_images() -> dict[str, str]:
    """What docker.io serves the nodes offline: the stand-ins, and busybox."""
    client = docker()
    images = compose.standins_by_upstream_name(client, console.print)
    busybox = mirror.busybox_image(client, Path(client.runner.command("busybox")[0]))
    return {**images, mirror.BUSYBOX: busybox}


def bring_up(cli: ClusterCli, node_image: str = "", offline: bool = False) -> None:
    options = kind_options(node_image, offline)
    cluster_up(cli, ROOT, console.print, options, offline_images if offline else None)


@task(name="up", help={"node_image": NODE_IMAGE_HELP, "offline": OFFLINE_HELP})
def create(c: Context, node_image: str = "", offline: bool = False) -> None:
    """Create (or complete) the kind cluster with its registry and metrics-server."""
    cli = ClusterCli(runner())
    bring_up(cli, node_image, offline)
    console.print(f"[green]cluster ready[/]: context {cli.context}, registry {REGISTRY_HOST}")


@task(name="down")
def delete(c: Context) -> None:
    """Delete the kind cluster, its registry and kind's network."""
    cluster_down(ClusterCli(runner()), console.print)


@task(
    name="build",
    help={
        "node_image": f"also kind's node image, built here without pulling ({nodeimage.NODE_IMAGE})"
    },
)
def build_binaries(c: Context, node_image: bool = False) -> None:
    """Build the pinned programs from source (Kubernetes, etcd, kind, Tilt, containerd,
    metrics-server, ...) into the cache outside the repository, and with --node-image kind's node
    image from them; what is already there is reused."""
    results = build_all(runner(), console.print)
    rows = [
        (
            f"{r.program.name} v{r.program.version}",
            ", ".join(r.program.commands),
            "cached" if r.cached else f"built in {r.seconds:.0f} s",
        )
        for r in results
    ]
    console.print(table("the pinned programs", ("program", "binaries", "status"), rows))
    console.print(f"in {results[0].program.folder.parent}")
    if node_image:
        client = docker()
        started = time.monotonic()
        image = nodeimage.build(client, client.runner, console.print)
        console.print(f"node image {image} ({time.monotonic() - started:.0f} s)")


@task(
    name="up",
    help={
        "ci": "run `tilt ci` instead: exit once every resource is ready, fail if one is not",
        "offline": OFFLINE_HELP,
        "node_image": NODE_IMAGE_HELP,
    },
)
def inner_loop_up(
    c: Context, ci: bool = False, offline: bool = False, node_image: str = ""
) -> None:
    """cluster.up, then `tilt up` (the Tilt UI on http://localhost:10350)."""
    cli = ClusterCli(runner())
    cli.runner.preflight(*CLUSTER_TOOLS, "tilt")
    build_env = tilt_build_env(docker(), offline)
    bring_up(cli, node_image, offline)
    if ci:
        tilt_ci(cli.runner, ROOT, cli.context, extra_env=build_env)
    else:
        tilt_up(cli.runner, ROOT, cli.context, extra_env=build_env)


@task(name="down")
def inner_loop_down(c: Context) -> None:
    """`tilt down` (if Tilt is installed), then cluster.down."""
    cli = ClusterCli(runner())
    # kind and kubectl first: a missing one must stop `down` before `tilt down` deletes anything
    # (a test of that mistake met a real tilt down of the running cluster's resources).
    cli.runner.preflight(*CLUSTER_TOOLS)
    if inspect("tilt").ok:
        tilt_down(cli.runner, ROOT, cli.context)
    cluster_down(cli, console.print)

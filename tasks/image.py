"""The image: `invoke build`."""

from __future__ import annotations

from invoke.context import Context

from devstack.core.console import console, table
from devstack.core.errors import UsageError
from devstack.image.build import SIZE_BUDGET_BYTES, build_image
from devstack.image.docker import Docker
from tasks._base import ROOT, runner, task

TARGETS = ("runtime", "dev")


def docker() -> Docker:
    """docker, with its daemon answering."""
    client = Docker(runner())
    client.daemon_ready()
    return client


@task(
    help={
        "offline": "build stand-in base images from Debian packages (no registry needed)",
        "target": "Dockerfile stage: runtime (default) or dev (what Tilt builds)",
    }
)
def build(c: Context, offline: bool = False, target: str = "runtime") -> None:
    """Build the image, tagged sha-<git sha> (and <semver> on a release tag); print its size."""
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: one of {', '.join(TARGETS)}")
    client = docker()
    result = build_image(client, ROOT, offline=offline, target=target, log=console.print)
    layers = [
        (f"{size / 1e6:.1f} MB", created_by[:90])
        for size, created_by in client.layer_sizes(result.tags[0])
        if size
    ]
    console.print(
        table(result.tags[0], ("layer size", "created by"), layers, right=("layer size",))
    )
    console.print(f"tags: {', '.join(result.tags)}")
    console.print(f"image id: {result.image_id}")
    budget = "[green]within[/]" if result.size_bytes <= SIZE_BUDGET_BYTES else "[red]OVER[/]"
    size, limit = result.size_bytes / 1e6, SIZE_BUDGET_BYTES / 1e6
    console.print(f"size: [bold]{size:.1f} MB[/] ({budget} the {limit:.0f} MB budget)")

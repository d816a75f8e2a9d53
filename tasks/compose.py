"""The Compose stack: `invoke compose.up`, `invoke compose.down`."""

from __future__ import annotations

import os

from invoke.context import Context

from devstack.core.console import console
from devstack.core.errors import UsageError
from devstack.core.tokens import CHROMA_TOKEN_VARIABLE, new_token, valid_token
from devstack.image.compose import Stack, prepare_images
from tasks._base import ROOT, task
from tasks.image import docker


@task(
    help={
        "offline": "use stand-in images built from Debian packages and PyPI",
        "project": "compose project name (default vaia)",
        "wait": "seconds to wait for every service to be healthy",
    }
)
def up(c: Context, offline: bool = False, project: str = "vaia", wait: int = 180) -> None:
    """Build the agent image, start agent + Redis + ChromaDB, wait until healthy, print the URLs."""
    client = docker()
    stack = Stack(ROOT, project=project, docker=client)  # compose is there before anything builds
    token = os.environ.get(CHROMA_TOKEN_VARIABLE, "").strip() or new_token()
    if not valid_token(token):
        raise UsageError(f"{CHROMA_TOKEN_VARIABLE} must be 32 or more of A-Z a-z 0-9 _ -")
    images = prepare_images(client, ROOT, offline=offline, log=console.print)
    stack.env = {**images, CHROMA_TOKEN_VARIABLE: token}  # Chroma's auth proxy and the agent
    stack.up(wait_seconds=wait)
    for name, url in stack.urls().items():
        console.print(f"  {name:9} {url}")
    console.print("[green]all services healthy[/]")


@task(
    help={
        "volumes": "also delete the Redis and Chroma data volumes",
        "project": "compose project name",
    }
)
def down(c: Context, volumes: bool = False, project: str = "vaia") -> None:
    """Stop and remove the Compose stack (and its data with --volumes)."""
    Stack(ROOT, project=project, docker=docker()).down(volumes=volumes)
    console.print(f"stack {project} removed" + (" with its volumes" if volumes else ""))

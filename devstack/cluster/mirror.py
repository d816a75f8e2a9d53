"""Where no registry can be pulled from (`invoke cluster.up --offline`): the local registry
stands in for docker.io. The stand-ins of the upstream images the deploy runs (Redis, Chroma,
Chroma's proxy, built from Debian and PyPI packages: devstack/image/compose.py) and busybox are
pushed into it under their docker.io names, and each node's containerd reads docker.io through it
(`certs.d/docker.io/hosts.toml`, written by kind.configure_nodes). The manifests stay as they are.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from devstack.core.errors import DevstackError
from devstack.core.names import REGISTRY, REGISTRY_HOST
from devstack.image.docker import Docker

Log = Callable[[str], None]
# containerd's registry configuration for docker.io on a node: the local registry, reached from
# the kind network by its container's name.
DOCKER_IO_HOSTS_TOML = (
    'server = "https://registry-1.docker.io"\n\n'
    f'[host."http://{REGISTRY}:5000"]\n  capabilities = ["pull", "resolve"]\n'
)
BUSYBOX = "busybox:latest"


def registry_name(image: str) -> str:
    """Where a docker.io name lives in the mirror: redis:7 -> localhost:5001/library/redis:7."""
    path = image.split("@")[0].removeprefix("docker.io/")
    first = path.split("/", 1)[0]
    if "/" in path and ("." in first or ":" in first or first == "localhost"):
        raise DevstackError(f"{image} is not a docker.io image: the mirror cannot serve it")
    return f"{REGISTRY_HOST}/{path if '/' in path else 'library/' + path}"


def busybox_image(docker: Docker, busybox: Path) -> str:
    """Debian's static busybox as an image (pods in tests: a shell, wget)."""
    tag = "vaia-standin/busybox:static"
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copy(busybox, context / "busybox")
        (context / "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", '
            '"/bin"]\nENTRYPOINT ["/bin/sh"]\n'
        )
        docker.build(context, tags=[tag])
    return tag


def push(docker: Docker, images: Mapping[str, str], log: Log) -> None:
    """Each local image (value) into the mirror under its docker.io name (key). A push of
    layers the registry holds is a manifest check."""
    for upstream, local in images.items():
        target = registry_name(upstream)
        docker.run(["tag", local, target])
        docker.run(["push", target], timeout=900)
    log(f"{', '.join(images)}: in {REGISTRY_HOST}, docker.io's mirror for the nodes")

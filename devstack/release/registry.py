"""`invoke push`: only an image whose id has a passed scan leaves this machine."""

from __future__ import annotations

from pathlib import Path

from devstack.core.errors import DevstackError
from devstack.core.names import REGISTRY_HOST
from devstack.image.docker import Docker
from devstack.release.scan import passed_scan

DEFAULT_REGISTRY = REGISTRY_HOST


class PushRefusedError(DevstackError):
    """The image may not leave this machine (no passed scan), or the registry took it wrong."""


def push(docker: Docker, root: Path, image: str, registry: str = DEFAULT_REGISTRY) -> str:
    """Tag `image` into `registry`, push it, and return the pushed reference by digest."""
    if not docker.image_exists(image):
        raise PushRefusedError(f"{image} does not exist here: run `invoke build` (or pass --image)")
    image_id = str(docker.inspect(image)["Id"])
    if passed_scan(root, image_id) is None:
        raise PushRefusedError(
            f"{image} ({image_id[:19]}) has no passed scan: run `invoke scan` on it first"
        )
    name, _, tag = image.rpartition(":")
    repository = f"{registry}/{name.rsplit('/', 1)[-1]}"
    target = f"{repository}:{tag}"
    docker.run(["tag", image, target])
    docker.run(["push", target], timeout=900)
    digests = [str(d) for d in docker.inspect(target).get("RepoDigests") or []]
    pushed = [d for d in digests if d.startswith(f"{repository}@sha256:")]
    if not pushed:
        raise PushRefusedError(f"pushed {target} but the registry reported no digest ({digests})")
    return pushed[0]

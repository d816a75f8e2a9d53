"""`invoke push`: only an image whose id has a passed scan leaves this machine, under every tag
it carries for this commit (`sha-<git sha>`, and `<semver>` on a release), all one digest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devstack.core.errors import DevstackError
from devstack.core.names import REGISTRY_HOST
from devstack.image.docker import Docker
from devstack.release.scan import passed_scan

DEFAULT_REGISTRY = REGISTRY_HOST


class PushRefusedError(DevstackError):
    """The image may not leave this machine (no passed scan), or the registry took it wrong."""


def push(
    docker: Docker, root: Path, images: str | Sequence[str], registry: str = DEFAULT_REGISTRY
) -> str:
    """Tag each of `images` (tags of one image) into `registry`, push them, and return the
    pushed reference by digest."""
    tags = [images] if isinstance(images, str) else list(images)
    ids = set()
    for image in tags:
        if not docker.image_exists(image):
            raise PushRefusedError(
                f"{image} does not exist here: run `invoke build` (or pass --image)"
            )
        ids.add(str(docker.inspect(image)["Id"]))
    if len(ids) != 1:
        raise PushRefusedError(f"{', '.join(tags)} are not one image: push them one at a time")
    image_id = ids.pop()
    if passed_scan(root, image_id) is None:
        raise PushRefusedError(
            f"{tags[0]} ({image_id[:19]}) has no passed scan: run `invoke scan` on it first"
        )
    repository = f"{registry}/{tags[0].rpartition(':')[0].rsplit('/', 1)[-1]}"
    for image in tags:
        target = f"{repository}:{image.rpartition(':')[2]}"
        docker.run(["tag", image, target])
        docker.run(["push", target], timeout=900)
    digests = [str(d) for d in docker.inspect(target).get("RepoDigests") or []]
    pushed = [d for d in digests if d.startswith(f"{repository}@sha256:")]
    if not pushed:
        raise PushRefusedError(f"pushed {target} but the registry reported no digest ({digests})")
    return pushed[0]

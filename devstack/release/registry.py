"""`invoke push`: only an image whose id has a passed scan leaves this machine."""

from __future__ import annotations

from pathlib import Path

from devstack.docker import Docker
from devstack.scan import passed_scan

DEFAULT_REGISTRY = "localhost:5001"


class PushRefusedError(RuntimeError):
    pass


def push(docker: Docker, root: Path, image: str, registry: str = DEFAULT_REGISTRY) -> str:
    """Tag `image` into `registry`, push it, and return the pushed reference by digest."""
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

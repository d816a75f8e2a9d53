"""The Compose stack: the one place that calls `docker compose`, and its offline stand-ins."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core.names import (
    CHROMA_IMAGE,
    CHROMA_PROXY_IMAGE,
    CHROMADB_VERSION,
    REDIS_IMAGE,
    REPO,
)
from devstack.core.runner import Result
from devstack.image.build import build_image, pip_ca_file
from devstack.image.docker import Docker
from devstack.image.standins import ensure_base_images, recipe_hash


@dataclass
class Stack:
    root: Path
    project: str = "vaia"
    env: dict[str, str] = field(default_factory=dict)
    docker: Docker = field(default_factory=Docker)

    def __post_init__(self) -> None:
        self.docker.runner.preflight("compose")

    def compose(self, args: Sequence[str], check: bool = True, timeout: float = 600) -> Result:
        """`docker compose --project-directory <root> -p <project> <args>` through the runner."""
        return self.docker.runner.run(
            "compose",
            "--project-directory",
            str(self.root),
            "-p",
            self.project,
            *args,
            check=check,
            timeout=timeout,
            env={**os.environ, **self.env, "DOCKER_BUILDKIT": "1"},
            cwd=self.root,
        )

    def up(self, wait_seconds: int = 180) -> None:
        self.compose(
            ["up", "--detach", "--no-build", "--wait", "--wait-timeout", str(wait_seconds)],
            timeout=wait_seconds + 60,
        )

    def down(self, volumes: bool = False) -> None:
        self.compose(["down", "--remove-orphans", *(["--volumes"] if volumes else [])])

    def ps(self) -> list[dict[str, object]]:
        out = self.compose(["ps", "--all", "--format", "json"]).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def urls(self) -> dict[str, str]:
        ports = {
            "agent": self.env.get("AGENT_PORT", "8080"),
            "redis": self.env.get("REDIS_PORT", "6379"),
        }
        return {
            "agent": f"http://127.0.0.1:{ports['agent']}",
            "docs": f"http://127.0.0.1:{ports['agent']}/docs",
            "metrics": f"http://127.0.0.1:{ports['agent']}/metrics",
            "redis": f"redis://127.0.0.1:{ports['redis']}/0",
        }


STANDINS = {  # the compose variable, the upstream image it stands for, its recipe
    "REDIS_IMAGE": (REDIS_IMAGE, "redis.Dockerfile"),
    "CHROMA_IMAGE": (CHROMA_IMAGE, "chroma.Dockerfile"),
    "CHROMA_PROXY_IMAGE": (CHROMA_PROXY_IMAGE, "nginx.Dockerfile"),
}
STANDINS_DIR = REPO / "docker" / "standins"


def standin_tag(name: str, recipe: str) -> str:
    """Keyed by the bases' recipe and the image's own (its Dockerfile and the files beside it)."""
    folder = STANDINS_DIR
    digest = hashlib.sha256(recipe_hash().encode())
    for path in sorted(folder.iterdir()):
        if path.name == recipe or not path.name.endswith(".Dockerfile"):
            digest.update(path.name.encode() + path.read_bytes())
    return f"vaia-standin/{name}:{digest.hexdigest()[:12]}"


def build_standin(docker: Docker, name: str, recipe: str, log: Callable[[str], None]) -> str:
    """One stand-in image from docker/standins/<recipe> on the builder stand-in (cached)."""
    tag = standin_tag(name, recipe)
    if docker.image_exists(tag):
        return tag
    bases = ensure_base_images(docker, log)
    ca = pip_ca_file()
    log(f"building {tag}")
    docker.build(
        STANDINS_DIR,
        tags=[tag],
        dockerfile=STANDINS_DIR / recipe,
        build_args={"BASE": bases.builder, "CHROMADB_VERSION": CHROMADB_VERSION},
        secrets={"pip_ca": ca} if ca else None,
    )
    return tag


def standin_service_images(docker: Docker, log: Callable[[str], None] = print) -> dict[str, str]:
    """Redis, Chroma and its proxy, built from Debian packages and PyPI, cached by recipe; by
    compose variable."""
    names = {"REDIS_IMAGE": "redis", "CHROMA_IMAGE": "chroma", "CHROMA_PROXY_IMAGE": "nginx"}
    return {
        variable: build_standin(docker, names[variable], STANDINS[variable][1], log)
        for variable in STANDINS
    }


def registry_standin(docker: Docker, log: Callable[[str], None] = print) -> str:
    """registry:2's stand-in (Debian's docker-registry), for kind's local registry offline."""
    return build_standin(docker, "registry", "registry.Dockerfile", log)


def standins_by_upstream_name(docker: Docker, log: Callable[[str], None] = print) -> dict[str, str]:
    """The stand-in of each upstream image, by the name the manifests and Compose use."""
    tags = standin_service_images(docker, log)
    return {STANDINS[variable][0]: tag for variable, tag in tags.items()}


def prepare_images(
    docker: Docker, root: Path, offline: bool, log: Callable[[str], None] = print
) -> dict[str, str]:
    """Build the agent image (the same build as `invoke build`) and pick the service images."""
    agent = build_image(docker, root, offline=offline, log=log)
    log(f"agent image {agent.tags[0]}: {agent.size_bytes / 1e6:.1f} MB")
    images = {"AGENT_IMAGE": agent.tags[0]}
    if offline:
        images |= standin_service_images(docker, log)
    return images

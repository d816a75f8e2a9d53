"""Image naming and building: immutable tags from git, OCI labels, the size report."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.core.names import IMAGE, SOURCE
from devstack.core.runner import Runner
from devstack.image.docker import BuildResult, Docker
from devstack.image.standins import ensure_base_images

SIZE_BUDGET_BYTES = 160_000_000  # as `docker image inspect` reports it
SEMVER_TAG = re.compile(r"^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$")


@dataclass(frozen=True)
class GitState:
    sha: str
    dirty: bool
    release: str | None  # semver of a `v<semver>` tag on HEAD
    committed_at: str  # ISO 8601, the image's `created` label (reproducible, unlike "now")

    @property
    def short(self) -> str:
        return self.sha[:7]


def git_state(root: Path, runner: Runner | None = None) -> GitState:
    runner = runner or Runner()

    def git(*args: str) -> str:
        return runner.run("git", *args, cwd=root, timeout=60).stdout.strip()

    sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    tags = git("tag", "--points-at", "HEAD").split()
    releases = [m.group(1) for t in tags if (m := SEMVER_TAG.match(t))]
    return GitState(
        sha=sha,
        dirty=dirty,
        release=sorted(releases)[-1] if releases else None,
        committed_at=git("log", "-1", "--format=%cI"),
    )


def image_tags(state: GitState, name: str = IMAGE) -> list[str]:
    """`sha-<7>` (`-dirty` for an unclean tree: never mistake it for a commit), plus `<semver>`
    for a release tag on a clean tree. Never `latest`."""
    tags = [f"{name}:sha-{state.short}{'-dirty' if state.dirty else ''}"]
    if state.release and not state.dirty:
        tags.append(f"{name}:{state.release}")
    return tags


def labels(state: GitState) -> dict[str, str]:
    return {
        "VERSION": state.release or f"sha-{state.short}{'-dirty' if state.dirty else ''}",
        "REVISION": state.sha,
        "CREATED": state.committed_at,
        "SOURCE": SOURCE,
    }


def pip_ca_file() -> Path | None:
    """A proxy CA for pip inside the build, from $VAIA_PIP_CA or pip's own $PIP_CERT."""
    for name in ("VAIA_PIP_CA", "PIP_CERT"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return None


def build_image(
    docker: Docker,
    root: Path,
    *,
    offline: bool,
    target: str = "runtime",
    name: str = IMAGE,
    echo: IO[str] | None = None,
    log: Callable[[str], None] = print,
    no_cache: bool = False,
) -> BuildResult:
    state = git_state(root, docker.runner)
    build_args = labels(state) | base_build_args(docker, offline, log)
    tags = image_tags(state, name) if target == "runtime" else [f"{name}:{target}-{state.short}"]
    ca = pip_ca_file()
    return docker.build(
        root,
        tags=tags,
        target=target,
        build_args=build_args,
        secrets={"pip_ca": ca} if ca else None,
        echo=echo,
        no_cache=no_cache,
    )


BUILD_CONTEXT = ("Dockerfile", ".dockerignore", "requirements", "docker", "agent")


def copy_context(root: Path, destination: Path) -> Path:
    """A copy of what the image build reads, to edit without touching the work tree."""
    for item in BUILD_CONTEXT:
        source = root / item
        if source.is_dir():
            shutil.copytree(
                source, destination / item, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination / item)
    return destination


def base_build_args(
    docker: Docker, offline: bool, log: Callable[[str], None] = print
) -> dict[str, str]:
    if not offline:
        return {}
    bases = ensure_base_images(docker, log)
    return {"BUILDER_IMAGE": bases.builder, "RUNTIME_IMAGE": bases.runtime}


def cached_steps(log: str) -> list[str]:
    """The build steps BuildKit reused from cache (`#N CACHED` lines, with their step names)."""
    names: dict[str, str] = {}
    cached = []
    for line in log.splitlines():
        match = re.match(r"^#(\d+) (\[.*)$", line)
        if match:
            names.setdefault(match.group(1), match.group(2))
        done = re.match(r"^#(\d+) CACHED$", line)
        if done:
            cached.append(names.get(done.group(1), f"#{done.group(1)}"))
    return cached

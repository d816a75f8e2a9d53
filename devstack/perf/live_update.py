"""Tilt's inner loop, emulated on the `dev` image (no cluster runs here): the pod as the dev overlay
runs it, live update's sync, and the rebuild after a dependency change."""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.core.errors import DevstackError
from devstack.image.build import base_build_args, cached_steps, copy_context, pip_ca_file
from devstack.image.docker import Docker


@dataclass(frozen=True)
class LiveUpdateResult:
    version: str
    edit_to_serve_seconds: float


class LiveUpdateEmulator:
    """The dev pod, emulated in docker the way the dev overlay runs it (read-only root, the code
    in a volume that an init step fills from the image, uid 65532), and Tilt's sync: a tar
    stream through `docker exec`, unpacked by the container's own user."""

    def __init__(self, docker: Docker, image: str, port: int) -> None:
        self.docker = docker
        self.image = image
        self.port = port
        self.name = f"vaia-live-update-{uuid.uuid4().hex[:8]}"
        self.volume = f"{self.name}-code"

    def __enter__(self) -> LiveUpdateEmulator:
        d = self.docker
        d.run(["volume", "create", self.volume])
        # What the pod's fsGroup does for an emptyDir: the volume belongs to the pod's group.
        d.run(
            [
                "run",
                "--rm",
                "-u",
                "0",
                "-v",
                f"{self.volume}:/code",
                "--entrypoint",
                "chown",
                self.image,
                "65532:65532",
                "/code",
            ]
        )
        d.run(
            [
                "run",
                "--rm",
                "-v",
                f"{self.volume}:/code",
                "--entrypoint",
                "cp",
                self.image,
                "-a",
                "/app/agent/.",
                "/code/",
            ]
        )
        scratch = "/tmp"  # noqa: S108 - the container's own tmpfs, as the pod's emptyDir
        mounts = ["--read-only", "--tmpfs", scratch, "-v", f"{self.volume}:/app/agent"]
        publish = ["-p", f"127.0.0.1:{self.port}:8080"]
        d.run(
            [
                "run",
                "-d",
                "--name",
                self.name,
                *mounts,
                *publish,
                "-e",
                "SEED_ON_STARTUP=false",
                self.image,
            ]
        )
        self._wait(lambda version: True, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.docker.run(["rm", "-f", self.name], check=False)
        self.docker.run(["volume", "rm", "-f", self.volume], check=False)

    def version(self) -> str | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
        except httpx.HTTPError:
            return None
        return str(response.json()["version"]) if response.status_code == 200 else None

    def _wait(self, done: Callable[[str], bool], timeout: float) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            version = self.version()
            if version is not None and done(version):
                return time.perf_counter() - started
            time.sleep(0.02)
        logs = self.docker.run(["logs", self.name], check=False).stderr[-2000:]
        raise DevstackError(f"the dev container did not serve in {timeout:.0f} s", detail=logs)

    def sync(self, files: dict[str, bytes]) -> None:
        """Tilt's sync step: a tar of the changed files, unpacked in /app/agent as uid 65532."""
        buffer = io.BytesIO()
        # PAX keeps sub-second mtimes: two edits within a second must still look different to
        # uvicorn's reloader, which compares modification times.
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, time.time()
                tar.addfile(info, io.BytesIO(data))
        untar = ["tar", "-x", "-f", "-", "-C", "/app/agent"]  # tar inside the container
        self.docker.run(["exec", "-i", "-u", "65532", self.name, *untar], stdin=buffer.getvalue())

    def edit_and_wait(self, root: Path) -> LiveUpdateResult:
        version = f"0.1.0+live.{uuid.uuid4().hex[:8]}"
        source = (root / "agent" / "__init__.py").read_text()
        edited = source.replace('__version__ = "0.1.0"', f'__version__ = "{version}"').encode()
        started = time.perf_counter()
        self.sync({"__init__.py": edited})
        self._wait(lambda served: served == version, timeout=60)
        return LiveUpdateResult(version, time.perf_counter() - started)


@dataclass(frozen=True)
class DependencyChange:
    rebuild_seconds: float  # `docker build --target dev` after the lock changed
    serve_seconds: float  # then a new pod from the new image, until /health answers
    cached_steps: list[str]  # build steps BuildKit reused (the dependency install must not be)

    @property
    def total_seconds(self) -> float:
        return self.rebuild_seconds + self.serve_seconds


def dependency_change(
    docker: Docker, root: Path, offline: bool, port: int, log: Callable[[str], None] = print
) -> DependencyChange:
    """Tilt's `fall_back_on` path: a change to requirements/runtime.lock is not synced; Tilt
    rebuilds the `dev` image and replaces the pod. Emulated on a copy of the build context: a
    new line in the lock, the build, then the pod as the dev overlay runs it, until it serves.
    (A cluster adds the push to the local registry, the pull and the scheduling.)"""
    args = base_build_args(docker, offline, log)
    ca = pip_ca_file()
    tag = "vaia-bench/dependency-change:1"
    with tempfile.TemporaryDirectory() as tmp:
        context = copy_context(root, Path(tmp) / "context")
        lock = context / "requirements" / "runtime.lock"
        lock.write_text(lock.read_text() + f"# bench {uuid.uuid4().hex}\n")
        log("dependency change: rebuilding the dev image")
        started = time.perf_counter()
        build = docker.build(
            context,
            tags=[tag],
            target="dev",
            build_args=args,
            secrets={"pip_ca": ca} if ca else None,
        )
        rebuilt = time.perf_counter() - started
    try:
        started = time.perf_counter()
        with LiveUpdateEmulator(docker, tag, port):  # returns once the new pod serves
            served = time.perf_counter() - started
    finally:
        docker.run(["rmi", "-f", tag], check=False)
    return DependencyChange(rebuilt, served, cached_steps(build.log))

"""Benchmarks that anyone can rerun: `invoke bench --image` measures the image."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.docker import Docker
from devstack.images import base_build_args, build_image, copy_context, pip_ca_file


@dataclass(frozen=True)
class ImageBench:
    tag: str
    size_bytes: int
    layers: list[tuple[int, str]]
    cold_build_seconds: float
    rebuild_seconds: float
    rebuild_cached_steps: int


def edit_code(context: Path) -> str:
    """A code-only change: a new version string in agent/__init__.py."""
    init = context / "agent" / "__init__.py"
    version = f"0.1.0+bench.{uuid.uuid4().hex[:8]}"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    return version


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
        raise TimeoutError(f"the dev container did not serve in {timeout}s:\n{logs}")

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
        untar = ["tar", "-x", "-f", "-", "-C", "/app/agent"]
        process = subprocess.run(
            [self.docker.binary, "exec", "-i", "-u", "65532", self.name, *untar],
            input=buffer.getvalue(),
            capture_output=True,
            check=False,
        )
        if process.returncode != 0:
            raise RuntimeError(f"sync failed: {process.stderr.decode()[-500:]}")

    def edit_and_wait(self, root: Path) -> LiveUpdateResult:
        version = f"0.1.0+live.{uuid.uuid4().hex[:8]}"
        source = (root / "agent" / "__init__.py").read_text()
        edited = source.replace('__version__ = "0.1.0"', f'__version__ = "{version}"').encode()
        started = time.perf_counter()
        self.sync({"__init__.py": edited})
        self._wait(lambda served: served == version, timeout=60)
        return LiveUpdateResult(version, time.perf_counter() - started)


def image_bench(
    docker: Docker, root: Path, offline: bool, log: Callable[[str], None] = print
) -> ImageBench:
    from devstack.images import cached_steps

    args = base_build_args(docker, offline, log)  # stand-in bases are prepared, not timed
    log("cold build (no cache)")
    started = time.perf_counter()
    cold = build_image(docker, root, offline=offline, no_cache=True, log=log)
    cold_seconds = time.perf_counter() - started
    ca = pip_ca_file()
    with tempfile.TemporaryDirectory() as tmp:
        context = copy_context(root, Path(tmp) / "context")
        edit_code(context)
        log("rebuild after a code-only change")
        started = time.perf_counter()
        rebuilt = docker.build(
            context,
            tags=["vaia-bench/rebuild:1"],
            build_args=args,
            secrets={"pip_ca": ca} if ca else None,
        )
        rebuild_seconds = time.perf_counter() - started
    docker.run(["rmi", "-f", "vaia-bench/rebuild:1"], check=False)
    return ImageBench(
        tag=cold.tags[0],
        size_bytes=cold.size_bytes,
        layers=[layer for layer in docker.layer_sizes(cold.tags[0]) if layer[0]],
        cold_build_seconds=cold_seconds,
        rebuild_seconds=rebuild_seconds,
        rebuild_cached_steps=len(cached_steps(rebuilt.log)),
    )

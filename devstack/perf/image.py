"""`invoke bench --image`: the image's size and layers, a cold build, and a rebuild after a
code-only change."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.image.build import (
    base_build_args,
    build_image,
    cached_steps,
    copy_context,
    pip_ca_file,
)
from devstack.image.docker import Docker


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


def image_bench(
    docker: Docker, root: Path, offline: bool, log: Callable[[str], None] = print
) -> ImageBench:
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

"""Benchmarks that anyone can rerun: `invoke bench --image` measures the image."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.docker import Docker
from devstack.images import base_build_args, build_image, cached_steps, copy_context, pip_ca_file
from devstack.net import free_port
from devstack.tools import require


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


# --- the service -----------------------------------------------------------------------------

WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")


@dataclass(frozen=True)
class Throughput:
    name: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str,
    path: str,
    name: str,
    *,
    query: str = "hello",
    unique: bool = False,
    connections: int = 8,
    seconds: int = 5,
) -> Throughput:
    """`wrk` POSTing JSON queries (unique ones for the cache-miss path): the one caller of wrk."""
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_QUERY": query,
        "BENCH_UNIQUE": "1" if unique else "0",
    }
    argv = [require("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(WRK_SCRIPT), url]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=True
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("BENCH "))
    data = json.loads(line.removeprefix("BENCH "))
    return Throughput(
        name,
        data["requests"] / data["seconds"],
        data["p50"],
        data["p95"],
        data["p99"],
        data["errors"],
    )


def start_server(
    argv: list[str], port: int, ready_path: str, env: dict[str, str], timeout: float = 60
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server on 127.0.0.1; returns it and the seconds until `ready_path` said yes."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while time.perf_counter() - started < timeout:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
            if response.status_code == 200 and "running" not in response.text:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}")
        time.sleep(0.02)
    process.kill()
    raise TimeoutError(f"{' '.join(argv)} not ready in {timeout}s")


@contextmanager
def serving(argv: list[str], ready_path: str, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """A server process on a free loopback port (passed as $PORT and `{port}` in argv) for the
    block: yields its URL and how long it took to be ready."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process, ready_after = start_server(argv, port, ready_path, {**env, "PORT": str(port)})
    try:
        yield f"http://127.0.0.1:{port}", ready_after
    finally:
        process.terminate()
        process.wait(10)


def service_bench(
    root: Path, seconds: int = 5, connections: int = 8
) -> tuple[list[Throughput], float]:
    """Cache hit, cache miss and the bare baseline, each on its own uvicorn process started the
    same way; plus `invoke dev`'s start-up time to a seeded knowledge base."""
    load = {"connections": connections, "seconds": seconds}
    question = "How do I roll back a Deployment?"
    hello = [sys.executable, "-m", "uvicorn", "devstack.hello:app", "--host", "127.0.0.1"]
    hello += ["--port", "{port}", "--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"CHROMA_PATH": f"{tmp}/chroma", "LLM_PROVIDER": "offline", "LOG_LEVEL": "warning"}
        env |= {
            "RATE_LIMIT_PER_MINUTE": "0",
            "HOST": "127.0.0.1",
            "GEMINI_API_KEY": "",
            "REDIS_URL": "",
        }
        with serving(hello, "/docs", {}) as (url, _):
            results = [wrk(url, "/hello", "bare uvicorn + FastAPI hello", **load)]
        with serving([sys.executable, "-m", "agent", "serve"], "/ready", env) as (url, _):
            httpx.post(
                url + "/v1/agent/infer", json={"query": question}, timeout=10
            )  # fill the cache
            results.append(wrk(url, "/v1/agent/infer", "infer, cache hit", query=question, **load))
            miss = "infer, cache miss"
            results.append(wrk(url, "/v1/agent/infer", miss, query=question, unique=True, **load))
        dev = [sys.executable, "-m", "invoke", "dev", "--port", "{port}"]
        with serving(dev, "/ready", {**env, "CHROMA_PATH": f"{tmp}/dev-chroma"}) as (_, startup):
            pass
    return results, startup


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}"


START_MARK = "<!-- invoke bench --service: start -->"
END_MARK = "<!-- invoke bench --service: end -->"


def write_benchmarks_md(
    path: Path, results: list[Throughput], startup_s: float, seconds: int
) -> Path:
    baseline = results[0]
    header = "| endpoint | req/s | slower than bare by | p50 ms | p95 ms | p99 ms | errors |"
    rows = [
        f"| {r.name} | {r.rps:.0f} | {baseline.rps / r.rps:.2f}x | {r.p50_ms:.1f} | "
        f"{r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.errors} |"
        for r in results
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Measured with `invoke bench --service` on {time.strftime('%Y-%m-%d')}, {machine()}.",
        "Each row: one uvicorn process started the same way, `wrk` with 1 thread and 8 connections",
        f"for {seconds} s, on 127.0.0.1; offline provider, embedded ChromaDB, in-process cache.",
        "",
        header,
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"`invoke dev` is ready, the shipped runbooks seeded, {startup_s:.2f} s after it starts.",
        "",
        "Goals: the cache hit within 2x of the bare endpoint's throughput, the miss within 4x,",
        "p95 under 50 ms at this load.",
        "",
    ]
    block = "\n".join([START_MARK, *lines[2:], END_MARK])
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\n" + START_MARK + "\n" + END_MARK + "\n"
    )
    # Only the measured block is rewritten; the notes around it are kept.
    before, _, rest = text.partition(START_MARK)
    _, _, after = rest.partition(END_MARK)
    path.write_text(before + block + after)
    return path

"""`invoke bench --service`: throughput and latency of the agent against a bare endpoint started
the same way, measured with wrk; the figures go to the run's report (devstack/perf/reports.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.core.errors import CommandError, DevstackError
from devstack.core.net import free_port
from devstack.core.process import error_output
from devstack.core.runner import Runner

WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")


@dataclass(frozen=True)
class Throughput:
    name: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int = 0  # responses received in the run


def wrk(
    url: str,
    path: str,
    name: str,
    *,
    query: str = "hello",
    unique: bool = False,
    connections: int = 8,
    seconds: int = 5,
    timeout_s: float = 2.0,
) -> Throughput:
    """`wrk` POSTing JSON queries (unique ones for the cache-miss path): the one caller of wrk.
    A request slower than `timeout_s` counts as an error (wrk's own default is 2 s)."""
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_QUERY": query,
        "BENCH_UNIQUE": "1" if unique else "0",
        "BENCH_SEED": str(secrets.randbelow(2**31)),  # unique queries differ from run to run
    }
    args = ["-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s:g}s"]
    args += ["-s", str(WRK_SCRIPT), url]
    done = Runner().run("wrk", *args, env=env, timeout=seconds + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise CommandError(f"wrk printed no summary for {url}{path}", detail=done.stdout[-2000:])
    line = lines[0]
    data = json.loads(line.removeprefix("BENCH "))
    return Throughput(
        name,
        data["requests"] / data["seconds"],
        data["p50"],
        data["p95"],
        data["p99"],
        data["errors"],
        data["requests"],
    )


def start_server(
    argv: list[str],
    port: int,
    ready_path: str,
    env: dict[str, str],
    timeout: float = 60,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a Python server (`argv` after the interpreter) on 127.0.0.1; returns it and the
    seconds until `ready_path` said yes (for the agent's /ready: seeded). `cwd` comes first on
    the server's sys.path (`python -m`): a folder with another `agent` package runs that one."""
    started = time.perf_counter()
    process = Runner().start("python", *argv, env={**os.environ, **env}, cwd=cwd)
    while time.perf_counter() - started < timeout:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
            if response.status_code == 200 and _ready(response):
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            error = error_output(process)
            raise DevstackError(f"{' '.join(argv)} exited with {process.returncode}", error)
        time.sleep(0.02)
    process.kill()
    raise DevstackError(f"{' '.join(argv)} was not ready within {timeout:.0f} s")


def _ready(response: httpx.Response) -> bool:
    """200, and for the agent's /ready: the knowledge base seeded (not "not started" or
    "running"), so that no measured request is answered while seeding."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and "checks" in body:
            return body["checks"].get("knowledge_seed") not in ("not started", "running")
    return "running" not in response.text


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    ready_after: float
    pid: int


@contextmanager
def server(
    argv: list[str], ready_path: str, env: dict[str, str], cwd: Path | None = None
) -> Iterator[Server]:
    """A Python server on a free loopback port (passed as $PORT and `{port}` in argv)."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process, ready_after = start_server(argv, port, ready_path, {**env, "PORT": str(port)}, cwd=cwd)
    try:
        yield Server(f"http://127.0.0.1:{port}", port, ready_after, process.pid)
    finally:
        # Its children first: `invoke dev` runs uvicorn's reloader, which runs the server in a
        # process of its own; ending invoke alone left both running (and using CPU).
        children = descendants(process.pid)
        for pid in [process.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        deadline = time.monotonic() + 10
        while children and time.monotonic() < deadline:
            children = [pid for pid in children if Path(f"/proc/{pid}").exists()]
            time.sleep(0.05)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """The processes started by `pid`, and by those, ... (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextmanager
def serving(argv: list[str], ready_path: str, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """A Python server on a free loopback port (passed as $PORT and `{port}` in argv) for the
    block: yields its URL and how long it took to be ready."""
    with server(argv, ready_path, env) as running:
        yield running.url, running.ready_after


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HELLO = ["-m", "uvicorn", "devstack.perf.hello:app", "--host", "127.0.0.1"]
HELLO += ["--port", "{port}", "--no-access-log", "--log-level", "warning"]


def service_bench(
    root: Path, seconds: int = 5, connections: int = 8
) -> tuple[list[Throughput], float]:
    """Cache hit, cache miss and the bare baseline, each on its own uvicorn process started the
    same way; plus `invoke dev`'s start-up time to a seeded knowledge base."""
    load = {"connections": connections, "seconds": seconds}
    question = "How do I roll back a Deployment?"
    hello = HELLO
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
        with serving(["-m", "agent", "serve"], "/ready", env) as (url, _):
            httpx.post(
                url + "/v1/agent/infer", json={"query": question}, timeout=10
            )  # fill the cache
            results.append(wrk(url, "/v1/agent/infer", "infer, cache hit", query=question, **load))
            miss = "infer, cache miss"
            results.append(wrk(url, "/v1/agent/infer", miss, query=question, unique=True, **load))
        dev = ["-m", "invoke", "dev", "--port", "{port}"]
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


def service_block(results: list[Throughput], startup_s: float, seconds: int) -> list[str]:
    """The `--service` section: the table and how it was measured."""
    baseline = results[0]
    header = "| endpoint | req/s | slower than bare by | p50 ms | p95 ms | p99 ms | errors |"
    rows = [
        f"| {r.name} | {r.rps:.0f} | {baseline.rps / r.rps:.2f}x | {r.p50_ms:.1f} | "
        f"{r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.errors} |"
        for r in results
    ]
    return [
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

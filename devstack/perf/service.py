"""`invoke bench --service`: throughput and latency of the agent against a bare endpoint started
the same way, measured with wrk (the one caller of wrk); the figures go to the run's report
(devstack/perf/reports.py)."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.core.errors import CommandError
from devstack.core.names import REPO
from devstack.core.runner import Runner
from devstack.harness import services

WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
INFER = "/v1/agent/infer"


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


def service_bench(seconds: int = 5, connections: int = 8) -> tuple[list[Throughput], float]:
    """Cache hit, cache miss and the bare baseline, each on its own uvicorn process started the
    same way (devstack/harness/services.py); plus `invoke dev`'s start-up time to a seeded
    knowledge base."""
    question = "How do I roll back a Deployment?"
    with tempfile.TemporaryDirectory() as tmp:
        with services.hello() as hello:
            bare = "bare uvicorn + FastAPI hello"
            results = [wrk(hello.url, "/hello", bare, connections=connections, seconds=seconds)]
        with services.agent(Path(tmp)) as agent:
            httpx.post(agent.url + INFER, json={"query": question}, timeout=10)  # fill the cache
            for name, unique in (("infer, cache hit", False), ("infer, cache miss", True)):
                results.append(
                    wrk(
                        agent.url,
                        INFER,
                        name,
                        query=question,
                        unique=unique,
                        connections=connections,
                        seconds=seconds,
                    )
                )
        env = services.agent_environment(
            CHROMA_PATH=f"{tmp}/dev-chroma", LLM_PROVIDER="offline", LOG_LEVEL="warning"
        )
        with services.invoke_dev(REPO, env) as dev:
            startup = dev.ready_after
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

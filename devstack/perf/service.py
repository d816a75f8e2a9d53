"""`invoke bench --service`: throughput and latency of the agent against a bare endpoint started
the same way, measured with wrk (the one caller of wrk); where a cache hit's CPU goes, by stage
(devstack/perf/stages.py); the figures go to the run's report (devstack/perf/reports.py)."""

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
from devstack.perf.pyspy import RATE_HZ
from devstack.perf.reports import markdown
from devstack.perf.stages import Profile, profile_of, profile_table

WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
INFER = "/v1/agent/infer"
GOAL_HIT_VS_BARE = 0.5  # issue #13, and #25 on the slower machine


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


@dataclass(frozen=True)
class ServiceBench:
    results: list[Throughput]  # the bare endpoint, the cache hit, the cache miss
    startup_s: float | None  # `invoke dev` to a seeded knowledge base; None: not measured
    hit_cpu_ms: float = 0.0  # the agent's CPU per cache hit (/proc, over the hits' run)
    hit_profile: Profile | None = None
    label: str = "this checkout"

    @property
    def hit_vs_bare(self) -> float:
        bare, hit = self.results[0], self.results[1]
        return hit.rps / bare.rps if bare.rps else 0.0


def service_bench(
    seconds: int = 5,
    connections: int = 8,
    agent_from: Path | None = None,
    profiled: bool = True,
) -> ServiceBench:
    """Cache hit, cache miss and the bare baseline, each on its own uvicorn process started the
    same way (devstack/harness/services.py); where a hit's CPU goes (the hits run again, sampled
    by py-spy); `invoke dev`'s start-up time to a seeded knowledge base, for this checkout
    (`agent_from`: another `agent` package, whose own start is not measured)."""
    question = "How do I roll back a Deployment?"
    with tempfile.TemporaryDirectory() as tmp:
        with services.hello() as hello:
            bare = "bare uvicorn + FastAPI hello"
            results = [wrk(hello.url, "/hello", bare, connections=connections, seconds=seconds)]
        with services.agent(Path(tmp), agent_from=agent_from) as agent:

            def load(name: str, unique: bool = False) -> Throughput:
                return wrk(
                    agent.url,
                    INFER,
                    name,
                    query=question,
                    unique=unique,
                    connections=connections,
                    seconds=seconds,
                )

            httpx.post(agent.url + INFER, json={"query": question}, timeout=10)  # fill the cache
            before = agent.cpu_seconds()
            results.append(load("infer, cache hit"))
            hit_cpu_ms = 1000 * (agent.cpu_seconds() - before) / max(results[1].requests, 1)
            results.append(load("infer, cache miss", unique=True))
            hit_profile = None
            if profiled:
                hit_profile = profile_of(
                    agent.pid, Path(tmp), "cache hit", hit_cpu_ms, lambda: load("cache hit")
                )
        startup = None
        if agent_from is None:
            env = services.agent_environment(
                CHROMA_PATH=f"{tmp}/dev-chroma", LLM_PROVIDER="offline", LOG_LEVEL="warning"
            )
            with services.invoke_dev(REPO, env) as dev:
                startup = dev.ready_after
    label = str(agent_from or "this checkout")
    return ServiceBench(results, startup, hit_cpu_ms, hit_profile, label)


def machine() -> str:
    """The machine a benchmark ran on: cores, the CPU as /proc/cpuinfo names it (with its family,
    model and clock, which tell apart CPUs sold under one name), Python."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's fields only
            fields.setdefault(key.strip(), value.strip())
    cpu = fields.get("model name", "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields['model']}"
        cpu += f", {float(fields['cpu MHz']):.0f} MHz)" if "cpu MHz" in fields else ")"
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def service_table(result: ServiceBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns: tuple[str, ...]
    columns = ("endpoint", "req/s", "of bare", "goal", "p50 ms", "p95 ms", "p99 ms", "errors")
    bare = result.results[0]
    rows: list[tuple[str, ...]] = [
        (
            r.name,
            f"{r.rps:.0f}",
            f"{r.rps / bare.rps:.2f}" if bare.rps else "",
            f">= {GOAL_HIT_VS_BARE}" if index == 1 else "",
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.errors),
        )
        for index, r in enumerate(result.results)
    ]
    return columns, rows


def service_block(result: ServiceBench, seconds: int) -> list[str]:
    """The `--service` section: the table, how it was measured, where a hit's CPU goes."""
    lines = [
        f"Measured with `invoke bench --service` on {time.strftime('%Y-%m-%d')}, {machine()}; "
        f"agent: {result.label}.",
        "Each row: one uvicorn process started the same way, `wrk` with 1 thread and 8 "
        f"connections for {seconds} s, on 127.0.0.1; offline provider, embedded ChromaDB, "
        "in-process cache.",
        "",
        *markdown(*service_table(result)),
        "",
        f"The agent's CPU per cache hit: {result.hit_cpu_ms:.3f} ms.",
    ]
    if result.startup_s is not None:
        lines.append(
            f"`invoke dev` is ready, the shipped runbooks seeded, {result.startup_s:.2f} s after "
            "it starts."
        )
    if result.hit_profile is not None:
        lines += [
            "",
            "Where a cache hit's CPU goes: the hits again, the agent sampled by py-spy "
            f"({RATE_HZ} Hz, the threads at work; devstack/perf/stages.py puts each sample in its "
            "stage), each stage's share times the CPU per hit measured without the profiler.",
            "",
            *markdown(*profile_table([result.hit_profile])),
        ]
    return [*lines, ""]

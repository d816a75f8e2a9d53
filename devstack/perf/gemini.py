"""`invoke bench --gemini` and `--production`: the agent at the speed of the network.

The Gemini path: one agent process whose Gemini is the stand-in in its own process
(devstack/harness/gemini.py, generateContent answering after a set latency), unique questions so
that every
request misses the cache, at 20 and 100 concurrent clients (wrk); streamed answers from
locust's closed loop (devstack/perf/closed_loop.py). Each row gives the throughput as a
share of the ideal (clients / latency: what a server with no cost of its own would serve), the
latency percentiles, wrk's errors (2 s timeouts included) and the agent's CPU time per request
(/proc, all its threads, divided by the requests served).

Production-shaped: the same agent with a real Redis (redis-server) and a real Chroma server
(`chroma run`, the chromadb package's) on loopback; the cache hit against the bare endpoint of
`invoke bench --service` in the same run, and the cache miss through the slow stand-in.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.core.errors import DevstackError
from devstack.harness import services
from devstack.harness.services import AgentServer, GeminiServer
from devstack.perf.clients import ANSWERED, CLOSED_LOOP, FIRST_TOKEN, REFUSED
from devstack.perf.loadtest import Percentiles, run_locust
from devstack.perf.pyspy import RATE_HZ
from devstack.perf.reports import markdown
from devstack.perf.service import GOAL_HIT_VS_BARE, Throughput, wrk
from devstack.perf.stages import Profile, profile_of, profile_table

QUESTION = "How do I roll back a Deployment?"
INFER = "/v1/agent/infer"

# The goals of issue #13, printed next to the figures.
GOAL_CPU_MS = 5.0
GOAL_IDEAL_SHARE = 0.6
# Issue #19: streamed answers, the stand-in sending 5 chunks over 1 s, 50 clients; the time to
# first token's p50 within 100 ms of the stand-in's first chunk.
STREAM_CHUNKS, STREAM_MS, STREAM_CLIENTS = 5, 1000.0, 50
GOAL_FIRST_TOKEN_OVER_CHUNK_MS = 100.0


@dataclass(frozen=True)
class LoadRow:
    """One wrk run against the agent, with the agent's CPU over the run."""

    clients: int
    load: Throughput
    cpu_ms_per_request: float
    ideal_rps: float | None = None  # clients / latency, for rows through the slow stand-in
    gemini_calls_per_request: float | None = None

    @property
    def ideal_share(self) -> float | None:
        return self.load.rps / self.ideal_rps if self.ideal_rps else None


@dataclass(frozen=True)
class StreamRow:
    """Streamed answers (POST /v1/agent/infer/stream) through the stand-in's stream."""

    clients: int
    answered: int
    errors: int  # no answer, a status other than 200, or an error event
    first_token_p50_ms: float
    first_token_p95_ms: float
    end_to_end_p50_ms: float
    end_to_end_p95_ms: float
    first_chunk_ms: float  # when the stand-in sent its first chunk (p50, as it measured it)
    cpu_ms_per_request: float

    @property
    def first_token_over_first_chunk_ms(self) -> float:
        return self.first_token_p50_ms - self.first_chunk_ms


@dataclass(frozen=True)
class GeminiBench:
    latency_ms: float
    seconds: int
    rows: list[LoadRow] = field(default_factory=list)
    stream: StreamRow | None = None
    stream_chunks: int = STREAM_CHUNKS
    stream_ms: float = STREAM_MS
    profile: Profile | None = None  # where the CPU of an answer goes, at the first row's clients
    label: str = "this checkout"


@dataclass(frozen=True)
class ProductionBench:
    latency_ms: float
    seconds: int
    bare: Throughput
    hit: LoadRow
    miss: LoadRow


def measured(
    agent: AgentServer,
    name: str,
    clients: int,
    seconds: int,
    unique: bool,
    ideal_rps: float | None,
) -> LoadRow:
    """wrk against the agent's infer, with the agent's CPU time before and after."""
    before = agent.cpu_seconds()
    load = wrk(
        agent.url,
        INFER,
        name,
        query=QUESTION,
        unique=unique,
        connections=clients,
        seconds=seconds,
    )
    used = agent.cpu_seconds() - before
    served = max(load.requests, 1)
    return LoadRow(clients, load, 1000 * used / served, ideal_rps)


def gemini_calls(standin: GeminiServer) -> int:
    return sum(standin.stats()["calls"].values())


def slow_gemini(latency_ms: float) -> GeminiServer:
    return services.gemini_server(
        latency_ms=latency_ms, stream_chunks=STREAM_CHUNKS, stream_ms=STREAM_MS
    )


def streamed(agent: AgentServer, standin: GeminiServer, clients: int, seconds: int) -> StreamRow:
    """`clients` concurrent clients asking the streaming endpoint unique questions for
    `seconds` (locust's closed loop: wrk cannot read events)."""
    before = agent.cpu_seconds()
    with tempfile.TemporaryDirectory() as report:
        stats = run_locust(
            agent.url,
            clients,
            clients,
            seconds,
            Path(report),
            CLOSED_LOOP,
            ["StreamAsker"],
        )
    used = agent.cpu_seconds() - before
    answered = stats.entries.get(ANSWERED, Percentiles(None, None))
    refused = stats.entries.get(REFUSED, Percentiles(None, None))
    first = stats.entries.get(FIRST_TOKEN, Percentiles(None, None))
    return StreamRow(
        clients,
        answered.count,
        stats.failures + refused.count,
        first.p50_ms or 0.0,
        first.p95_ms or 0.0,
        answered.p50_ms or 0.0,
        answered.p95_ms or 0.0,
        standin.stats()["first_chunk_p50_ms"] or 0.0,
        1000 * used / max(answered.count, 1),
    )


def gemini_bench(
    seconds: int = 10,
    latency_ms: float = 300,
    clients: tuple[int, ...] = (20, 100),
    stream_clients: int = STREAM_CLIENTS,
    agent_from: Path | None = None,
    profiled: bool = True,
) -> GeminiBench:
    """The Gemini path at each number of clients, every request a cache miss; then streamed
    answers (0 `stream_clients`: none); then where an answer's CPU goes, at the first number of
    clients (the load again, sampled by py-spy). `agent_from`: another `agent` package."""
    rows = []
    stream = None
    answer_profile = None
    with (
        tempfile.TemporaryDirectory() as tmp,
        slow_gemini(latency_ms) as standin,
        services.agent(Path(tmp), standin, agent_from) as agent,
    ):
        if stream_clients:
            stream = streamed(agent, standin, stream_clients, seconds)
        for n in clients:
            calls = gemini_calls(standin)
            row = measured(agent, "infer, cache miss", n, seconds, True, n / latency_ms * 1e3)
            per_request = (gemini_calls(standin) - calls) / max(row.load.requests, 1)
            rows.append(
                LoadRow(row.clients, row.load, row.cpu_ms_per_request, row.ideal_rps, per_request)
            )
        if profiled and rows:
            first = rows[0]

            def load() -> Throughput:
                return wrk(
                    agent.url,
                    INFER,
                    "answers",
                    query=QUESTION,
                    unique=True,
                    connections=first.clients,
                    seconds=seconds,
                )

            name = f"Gemini-backed answer, {first.clients} clients"
            answer_profile = profile_of(agent.pid, Path(tmp), name, first.cpu_ms_per_request, load)
    label = str(agent_from or "this checkout")
    return GeminiBench(latency_ms, seconds, rows, stream, profile=answer_profile, label=label)


def production_bench(
    seconds: int = 10, latency_ms: float = 300, connections: int = 8, miss_clients: int = 100
) -> ProductionBench:
    """Bare endpoint, then the agent on Redis + Chroma server + slow Gemini: hit and miss."""
    with services.hello() as hello:
        bare = wrk(
            hello.url,
            "/hello",
            "bare uvicorn + FastAPI hello",
            connections=connections,
            seconds=seconds,
        )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(services.redis_server(tmp))
        chroma = stack.enter_context(services.chroma_server(tmp))
        standin = stack.enter_context(slow_gemini(latency_ms))
        env = {"REDIS_URL": redis.url, "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma.port)}
        agent = stack.enter_context(services.agent(tmp, standin, None, **env))
        response = httpx.post(agent.url + INFER, json={"query": QUESTION}, timeout=30)
        if response.status_code != 200 or response.json().get("degraded"):
            raise DevstackError("the production-shaped agent does not answer", response.text)
        hit = measured(agent, "infer, cache hit (Redis)", connections, seconds, False, None)
        miss = measured(
            agent,
            "infer, cache miss (Gemini stand-in, Chroma server, Redis)",
            miss_clients,
            seconds,
            True,
            miss_clients / latency_ms * 1e3,
        )
    return ProductionBench(latency_ms, seconds, bare, hit, miss)


def gemini_table(result: GeminiBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns: tuple[str, ...] = (
        "clients",
        "req/s",
        "of ideal",
        "goal",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "CPU ms/req",
        "goal",
        "Gemini calls/req",
    )
    rows: list[tuple[str, ...]] = [
        (
            str(r.clients),
            f"{r.load.rps:.0f}",
            f"{r.ideal_share or 0:.2f} of {r.ideal_rps or 0:.0f}",
            f">= {GOAL_IDEAL_SHARE}, no errors" if r.clients >= 100 else "",
            f"{r.load.p50_ms:.0f}",
            f"{r.load.p95_ms:.0f}",
            f"{r.load.p99_ms:.0f}",
            str(r.load.errors),
            f"{r.cpu_ms_per_request:.2f}",
            f"<= {GOAL_CPU_MS:g}",
            f"{r.gemini_calls_per_request or 0:.2f}",
        )
        for r in result.rows
    ]
    return columns, rows


def stream_table(result: GeminiBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns: tuple[str, ...] = (
        "clients",
        "answers/s",
        "first token p50 ms",
        "p95 ms",
        "stand-in's first chunk ms",
        "p50 over it",
        "goal",
        "end to end p50 ms",
        "p95 ms",
        "errors",
        "CPU ms/answer",
    )
    r = result.stream
    if r is None:
        return columns, []
    row = (
        str(r.clients),
        f"{r.answered / result.seconds:.0f}",
        f"{r.first_token_p50_ms:.0f}",
        f"{r.first_token_p95_ms:.0f}",
        f"{r.first_chunk_ms:.0f}",
        f"{r.first_token_over_first_chunk_ms:+.0f} ms",
        f"<= {GOAL_FIRST_TOKEN_OVER_CHUNK_MS:g} ms",
        f"{r.end_to_end_p50_ms:.0f}",
        f"{r.end_to_end_p95_ms:.0f}",
        str(r.errors),
        f"{r.cpu_ms_per_request:.2f}",
    )
    return columns, [row]


def production_table(result: ProductionBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns: tuple[str, ...] = (
        "endpoint",
        "clients",
        "req/s",
        "vs",
        "goal",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU ms/req",
    )
    bare, hit, miss = result.bare, result.hit, result.miss
    rows: list[tuple[str, ...]] = [
        (
            bare.name,
            str(hit.clients),
            f"{bare.rps:.0f}",
            "1.00 of bare",
            "",
            f"{bare.p50_ms:.1f}",
            f"{bare.p99_ms:.1f}",
            str(bare.errors),
            "",
        ),
        (
            hit.load.name,
            str(hit.clients),
            f"{hit.load.rps:.0f}",
            f"{hit.load.rps / bare.rps:.2f} of bare",
            f">= {GOAL_HIT_VS_BARE} (in-process cache)",
            f"{hit.load.p50_ms:.1f}",
            f"{hit.load.p99_ms:.1f}",
            str(hit.load.errors),
            f"{hit.cpu_ms_per_request:.2f}",
        ),
        (
            miss.load.name,
            str(miss.clients),
            f"{miss.load.rps:.0f}",
            f"{miss.ideal_share or 0:.2f} of ideal",
            f">= {GOAL_IDEAL_SHARE}",
            f"{miss.load.p50_ms:.1f}",
            f"{miss.load.p99_ms:.1f}",
            str(miss.load.errors),
            f"{miss.cpu_ms_per_request:.2f}",
        ),
    ]
    return columns, rows


def gemini_block(result: GeminiBench, machine: str) -> list[str]:
    return [
        f"Measured with `invoke bench --gemini` on {time.strftime('%Y-%m-%d')}, {machine}; "
        f"agent: {result.label}.",
        f"One agent process (embedded ChromaDB, in-process cache); Gemini is a stand-in in its "
        f"own process whose generateContent answers after {result.latency_ms:g} ms; unique "
        f"questions (every request misses the cache); `wrk`, {result.seconds} s per row, 2 s "
        "timeout. Ideal: clients / latency. CPU: the agent process's user + system time over the "
        "run (/proc), divided by the requests served.",
        "",
        *markdown(*gemini_table(result)),
        "",
        *(
            [
                f"Streamed answers (`POST /v1/agent/infer/stream`): the stand-in streams "
                f"{result.stream_chunks} chunks over {result.stream_ms:g} ms; clients "
                "(locust, devstack/perf/closed_loop.py) time the first `delta` event and the "
                f"`done` event, for {result.seconds} s. Goal: the first token's p50 within "
                f"{GOAL_FIRST_TOKEN_OVER_CHUNK_MS:g} ms of the stand-in's first chunk.",
                "",
                *markdown(*stream_table(result)),
                "",
            ]
            if result.stream
            else []
        ),
        *(
            [
                f"Where an answer's CPU goes ({result.profile.name}): the load again, the agent "
                f"sampled by py-spy ({RATE_HZ} Hz, the threads at work; devstack/perf/stages.py "
                "puts each sample in its stage), each stage's share times the CPU per answer "
                "measured without the profiler.",
                "",
                *markdown(*profile_table([result.profile])),
                "",
            ]
            if result.profile
            else []
        ),
    ]


def production_block(result: ProductionBench, machine: str) -> list[str]:
    return [
        f"Measured with `invoke bench --production` on {time.strftime('%Y-%m-%d')}, {machine}.",
        "The agent with a real Redis (`redis-server`) and a real Chroma server (`chroma run`) on "
        f"127.0.0.1, Gemini the stand-in answering after {result.latency_ms:g} ms; the bare "
        f"endpoint in the same run; `wrk`, {result.seconds} s per row. Goal for the cache hit "
        f"(in-process, `invoke bench --service`): >= {GOAL_HIT_VS_BARE} of bare.",
        "",
        *markdown(*production_table(result)),
        "",
    ]


def plot_gemini(result: GeminiBench, path: Path) -> Path:
    """Throughput against the ideal, and the latency percentiles, by number of clients: the
    curve shows where the agent stops keeping up with its Gemini."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [r.clients for r in result.rows]
    figure, (rate, latency) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    rate.plot(clients, [r.load.rps for r in result.rows], "o-", label="served")
    rate.plot(clients, [r.ideal_rps or 0 for r in result.rows], "k--", label="ideal")
    rate.set_ylabel("requests/s")
    rate.legend(loc="upper left")
    for name, values in (
        ("p50", [r.load.p50_ms for r in result.rows]),
        ("p95", [r.load.p95_ms for r in result.rows]),
        ("p99", [r.load.p99_ms for r in result.rows]),
    ):
        latency.plot(clients, values, "o-", label=name)
    latency.axhline(result.latency_ms, color="k", linestyle=":", label="Gemini stand-in")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("concurrent clients")
    latency.legend(loc="upper left")
    figure.suptitle(f"the Gemini path, stand-in answering after {result.latency_ms:g} ms")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

"""`invoke bench --serving`: the agent under the traffic of issue #19, each scenario measured the
way the issue describes it, against the Gemini stand-in in its own process
(devstack/harness/gemini.py, switched between modes with its `/control`):

- **quota**: every generate call answered 429 RESOURCE_EXHAUSTED with `Retry-After: 30`; a
  question every 6 s for 36 s (7 questions): how long each took, and how many generate calls
  reached Gemini.
- **hang-up**: Gemini taking 3 s; 40 clients that close their connection 0.3 s after asking: how
  many of the generate calls ran to completion, and how many the agent abandoned.
- **overload**: Gemini taking 1 s; 600 concurrent clients (locust's closed loop,
  devstack/perf/closed_loop.py: unique questions; a 503 or 429 waits its `Retry-After`): what
  was answered and refused, the answered requests' latencies, and `/health`, `/ready` and
  `/metrics` probed meanwhile from another process (this one, its own thread, one request at a
  time), with a bare uvicorn's `/hello` probed alike as the control: on a shared machine, what
  a request waits for a core whatever the server. Ten runs by default, each on a fresh agent:
  the goal (issue #25) is that the operations endpoints answer within 0.5 s in every one.

`agent_from` runs another `agent` package (a folder holding it: an older commit's, for the
*before* figures) with the same measuring code.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.harness import services
from devstack.harness.services import AgentServer, GeminiServer
from devstack.perf.clients import ANSWERED, CLOSED_LOOP, INFER, QUESTION, REFUSED, hang_up
from devstack.perf.loadtest import Percentiles, run_locust
from devstack.perf.reports import markdown

OPERATIONS = ("/health", "/ready", "/metrics")
GOAL_OPERATIONS_WORST_MS = 500.0  # in every overload run (issue #25)


@dataclass(frozen=True)
class Quota:
    seconds: float
    latencies_s: list[float]
    degraded: list[bool]
    generate_calls: int


@dataclass(frozen=True)
class HangUp:
    clients: int
    after_s: float
    gemini_s: float
    completed: int  # generate calls Gemini answered in full
    abandoned: int  # generate calls whose connection the agent closed first
    cancelled: int | None  # the agent's own count (None: it has none)


@dataclass(frozen=True)
class Overload:
    clients: int
    seconds: float
    gemini_s: float
    answered: Percentiles  # 200s: end to end
    refused: Percentiles  # 503s and 429s: how long the refusal took
    failures: dict[str, int]  # locust's, by error: other statuses, no HTTP answer at all
    operations_ms: dict[str, list[float]] = field(default_factory=dict)
    control_ms: list[float] = field(default_factory=list)  # a bare server, meanwhile
    agent_cores: float | None = None  # the agent's CPU over the load, in cores

    def operations_max_ms(self) -> float:
        return max((max(v) for v in self.operations_ms.values() if v), default=0.0)


@dataclass(frozen=True)
class ServingBench:
    quota: Quota
    hang_up: HangUp
    overloads: list[Overload]  # one per run, each on a fresh agent
    label: str = ""

    def runs_within_goal(self) -> int:
        """Overload runs whose operations endpoints never took longer than the goal."""
        return sum(o.operations_max_ms() <= GOAL_OPERATIONS_WORST_MS for o in self.overloads)


def p99(values: Sequence[float]) -> float | None:
    """The 99th percentile, a value that was measured (the nearest rank above)."""
    import numpy as np

    return float(np.percentile(values, 99, method="higher")) if len(values) else None


def quota_scenario(
    agent: AgentServer, gemini: GeminiServer, questions: int = 7, every_s: float = 6.0
) -> Quota:
    gemini.control(quota_exhausted=True, retry_after="30")
    before = gemini.count("calls")
    latencies, degraded = [], []
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for n in range(questions):
            due = started + n * every_s
            time.sleep(max(0.0, due - time.perf_counter()))
            asked = time.perf_counter()
            body = client.post(agent.url + INFER, json={"query": f"{QUESTION} (quota {n})"}).json()
            latencies.append(time.perf_counter() - asked)
            degraded.append(bool(body.get("degraded")))
    calls = gemini.count("calls") - before
    gemini.control(quota_exhausted=False)
    return Quota(time.perf_counter() - started, latencies, degraded, calls)


def hang_up_scenario(
    agent: AgentServer,
    gemini: GeminiServer,
    clients: int = 40,
    after_s: float = 0.3,
    gemini_s: float = 3.0,
) -> HangUp:
    gemini.control(latency_ms=gemini_s * 1000)
    before = gemini.stats()
    cancelled_before = agent.metric("vaia_requests_cancelled_total")
    asyncio.run(hang_up(agent.url, clients, after_s))
    # Long enough for every call to have been answered, then until none is left in flight.
    time.sleep(gemini_s + 1)
    gemini.settle()
    after = gemini.stats()

    def grew(kind: str) -> int:
        return int(after[kind].get("generateContent", 0) - before[kind].get("generateContent", 0))

    cancelled_after = agent.metric("vaia_requests_cancelled_total")
    cancelled = None if cancelled_after is None else int(cancelled_after - (cancelled_before or 0))
    return HangUp(clients, after_s, gemini_s, grew("completed"), grew("abandoned"), cancelled)


class OperationsProbe:
    """A thread that asks each operations endpoint in turn, one request at a time, and keeps
    how long each took; and, as a control, a bare server's endpoint (`control`, a URL): what
    the machine itself adds to a request while the load runs."""

    def __init__(self, url: str, interval_s: float = 0.05, control: str | None = None) -> None:
        self.url, self.interval_s, self.control = url, interval_s, control
        self.times_ms: dict[str, list[float]] = {path: [] for path in OPERATIONS}
        self.control_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OperationsProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                for path in OPERATIONS:
                    started = time.perf_counter()
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(self.url + path)
                        self.times_ms[path].append(1000 * (time.perf_counter() - started))
                    if self.control is not None:
                        started = time.perf_counter()
                        with contextlib.suppress(httpx.HTTPError):
                            client.get(self.control)
                            self.control_ms.append(1000 * (time.perf_counter() - started))
                    self._stop.wait(self.interval_s)


def overload_scenario(
    agent: AgentServer,
    gemini: GeminiServer,
    clients: int = 600,
    seconds: float = 20,
    gemini_s: float = 1.0,
) -> Overload:
    gemini.control(latency_ms=gemini_s * 1000)
    with (
        tempfile.TemporaryDirectory() as report,
        services.hello() as hello,
        OperationsProbe(agent.url, control=hello.url + "/hello") as probe,
    ):
        cpu, started = agent.cpu_seconds(), time.perf_counter()
        stats = run_locust(
            agent.url,
            clients,
            clients,  # all of them within a second
            max(1, round(seconds)),
            Path(report),
            CLOSED_LOOP,
            ["Asker"],
        )
        cores = (agent.cpu_seconds() - cpu) / (time.perf_counter() - started)
    none = Percentiles(None, None)
    return Overload(
        clients,
        seconds,
        gemini_s,
        stats.entries.get(ANSWERED, none),
        stats.entries.get(REFUSED, none),
        stats.failures_by_error,
        probe.times_ms,
        probe.control_ms,
        cores,
    )


def serving_bench(
    agent_from: Path | None = None,
    quota_questions: int = 7,
    quota_every_s: float = 6.0,
    hang_up_clients: int = 40,
    hang_up_gemini_s: float = 3.0,
    overload_clients: int = 600,
    overload_seconds: float = 20,
    overload_runs: int = 10,
) -> ServingBench:
    """Every scenario with the issues' figures by default (shorter ones for tests), each on an
    agent of its own (a breaker the quota opened must not answer the next scenario offline), the
    overload `overload_runs` times."""
    with tempfile.TemporaryDirectory() as tmp, services.gemini_server() as gemini:
        chroma = f"{tmp}/chroma"  # seeded by the first agent, found seeded by the others

        def agent() -> AgentServer:
            return services.agent(Path(tmp), gemini, agent_from, CHROMA_PATH=chroma)

        with agent() as running:
            quota = quota_scenario(running, gemini, quota_questions, quota_every_s)
        with agent() as running:
            hung = hang_up_scenario(running, gemini, hang_up_clients, gemini_s=hang_up_gemini_s)
        overloads = []
        for _ in range(overload_runs):
            with agent() as running:
                overloads.append(
                    overload_scenario(running, gemini, overload_clients, overload_seconds)
                )
    return ServingBench(quota, hung, overloads, str(agent_from or "this checkout"))


def _range(values: Sequence[float | None], unit: str = " ms") -> str:
    known = sorted(v for v in values if v is not None)
    if not known:
        return ""
    low, high = f"{known[0]:.0f}", f"{known[-1]:.0f}"
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def _cores(values: Sequence[float | None]) -> str:
    known = sorted(v for v in values if v is not None)
    if not known:
        return ""
    return f"{known[0]:.2f}" if len(known) == 1 else f"{known[0]:.2f}-{known[-1]:.2f}"


def serving_table(result: ServingBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    q, h, runs = result.quota, result.hang_up, result.overloads
    o = runs[0]
    failures = [(error, n) for run in runs for error, n in run.failures.items()]
    others = sum(n for error, n in failures if "status " in error)
    unanswered = sum(n for _, n in failures) - others
    worst = [run.operations_max_ms() for run in runs]
    columns: tuple[str, ...] = ("scenario", "measure", "value", "goal")
    rows: list[tuple[str, ...]] = [
        (
            f"quota spent (429, Retry-After: 30), {len(q.latencies_s)} questions in "
            f"{q.seconds:.0f} s",
            "slowest question",
            f"{max(q.latencies_s):.2f} s",
            "<= 1 s",
        ),
        ("", "generate calls that reached Gemini", str(q.generate_calls), "a few probes"),
        ("", "answers degraded", f"{sum(q.degraded)} of {len(q.degraded)}", ""),
        (
            f"{h.clients} clients hang up after {h.after_s:g} s, Gemini {h.gemini_s:g} s",
            "generate calls run to completion",
            str(h.completed),
            "0",
        ),
        ("", "generate calls abandoned by the agent", str(h.abandoned), ""),
        ("", "vaia_requests_cancelled_total", "" if h.cancelled is None else str(h.cancelled), ""),
        (
            f"{o.clients} clients for {o.seconds:g} s, Gemini {o.gemini_s:g} s; "
            f"{len(runs)} run{'s' if len(runs) > 1 else ''}, each on a fresh agent",
            "answered (200) / refused (503, 429) / other / no answer, all runs",
            f"{sum(r.answered.count for r in runs)} / {sum(r.refused.count for r in runs)} / "
            f"{others} / {unanswered}",
            "refusals",
        ),
        (
            "",
            "answered: p50 / p95 / max (range over the runs)",
            f"{_range([r.answered.p50_ms for r in runs])} / "
            f"{_range([r.answered.p95_ms for r in runs])} / "
            f"{_range([r.answered.max_ms for r in runs])}",
            "bounded",
        ),
        ("", "refused: max", _range([r.refused.max_ms for r in runs]), "at once"),
        (
            "",
            "the agent's CPU meanwhile, cores",
            _cores([r.agent_cores for r in runs]),
            "",
        ),
        *[
            (
                "",
                f"{path}: p99",
                _range([p99(r.operations_ms.get(path, [])) for r in runs]),
                "< 100 ms",
            )
            for path in OPERATIONS
        ],
        (
            "",
            "/health, /ready, /metrics: the slowest answer, run by run",
            ", ".join(f"{ms:.0f}" for ms in worst) + " ms",
            f"<= {GOAL_OPERATIONS_WORST_MS:.0f} ms in every run",
        ),
        (
            "",
            f"runs with every probe answered within {GOAL_OPERATIONS_WORST_MS:.0f} ms",
            f"{result.runs_within_goal()} of {len(runs)}",
            f"{len(runs)} of {len(runs)}",
        ),
        (
            "",
            "control: a bare uvicorn's /hello meanwhile, p99 / max",
            f"{_range([p99(r.control_ms) for r in runs])} / "
            f"{_range([max(r.control_ms, default=None) for r in runs])}",
            "the machine's share",
        ),
    ]
    return columns, rows


def serving_block(result: ServingBench, machine: str) -> list[str]:
    return [
        f"Measured with `invoke bench --serving` on {time.strftime('%Y-%m-%d')}, {machine}; "
        f"agent: {result.label}.",
        "One agent process with its defaults (embedded ChromaDB, in-process cache, "
        "`RATE_LIMIT_PER_MINUTE=0`); Gemini is the stand-in in its own process; every question "
        "unique; the overload's clients are locust's (a closed loop). The operations endpoints "
        "are probed one request at a time from another process while the overload runs; "
        "ranges are over the overload's runs.",
        "",
        *markdown(*serving_table(result)),
        "",
    ]

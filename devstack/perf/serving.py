"""`invoke bench --serving`: the agent under the traffic of issue #19, each scenario measured the
way the issue describes it, against the Gemini stand-in in its own process (`gemini_standin`,
switched between modes with its `/control`):

- **quota**: every generate call answered 429 RESOURCE_EXHAUSTED with `Retry-After: 30`; a
  question every 6 s for 36 s (7 questions): how long each took, and how many generate calls
  reached Gemini.
- **hang-up**: Gemini taking 3 s; 40 clients that close their connection 0.3 s after asking: how
  many of the generate calls ran to completion, and how many the agent abandoned.
- **overload**: Gemini taking 1 s; 600 concurrent clients (a closed loop, unique questions; a
  503 or 429 waits its `Retry-After`): what was answered and refused, the answered requests'
  latencies, and `/health`, `/ready` and `/metrics` probed meanwhile from another process (this
  one, its own thread, one request at a time), with a bare uvicorn's `/hello` probed alike as the
  control: on a shared machine, what a request waits for a core whatever the server.

`agent_from` runs another `agent` package (a folder holding it: an older commit's, for the
*before* figures) with the same measuring code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.core.errors import DevstackError
from devstack.perf.clients import INFER, QUESTION, hang_up, percentile
from devstack.perf.gemini import agent_env
from devstack.perf.reports import markdown
from devstack.perf.service import HELLO, Server, server

OPERATIONS = ("/health", "/ready", "/metrics")


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
    load: dict[str, object]
    operations_ms: dict[str, list[float]] = field(default_factory=dict)
    control_ms: list[float] = field(default_factory=list)  # a bare server, meanwhile

    def operations_max_ms(self) -> float:
        return max((max(v) for v in self.operations_ms.values() if v), default=0.0)


@dataclass(frozen=True)
class ServingBench:
    quota: Quota
    hang_up: HangUp
    overload: Overload
    label: str = ""


@contextlib.contextmanager
def standin() -> Iterator[Server]:
    argv = ["-m", "devstack.perf.gemini_standin", "--port", "{port}"]
    with server(argv, "/health", {}) as running:
        yield running


def control(standin: Server, **behaviour: object) -> None:
    httpx.post(standin.url + "/control", json=behaviour, timeout=5).raise_for_status()


def standin_stats(standin: Server) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = httpx.get(standin.url + "/stats", timeout=5).json()
    return stats


def metric(agent: Server, name: str) -> float | None:
    """The sum of a metric's samples in the agent's /metrics; None when it has no such metric."""
    text = httpx.get(agent.url + "/metrics", timeout=10).text
    values = [
        float(m.group(1))
        for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    ]
    return sum(values) if values else None


def quota_scenario(
    agent: Server, gemini: Server, questions: int = 7, every_s: float = 6.0
) -> Quota:
    control(gemini, quota_exhausted=True, retry_after="30")
    before = standin_stats(gemini)["calls"].get("generateContent", 0)
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
    calls = standin_stats(gemini)["calls"].get("generateContent", 0) - before
    control(gemini, quota_exhausted=False)
    return Quota(time.perf_counter() - started, latencies, degraded, calls)


def hang_up_scenario(
    agent: Server, gemini: Server, clients: int = 40, after_s: float = 0.3, gemini_s: float = 3.0
) -> HangUp:
    control(gemini, latency_ms=gemini_s * 1000)
    before = standin_stats(gemini)
    cancelled_before = metric(agent, "vaia_requests_cancelled_total")
    asyncio.run(hang_up(agent.url, clients, after_s))
    # Long enough for every call to have been answered, then until none is left in flight.
    time.sleep(gemini_s + 1)
    deadline = time.monotonic() + 30
    while standin_stats(gemini)["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.2)
    after = standin_stats(gemini)

    def grew(kind: str) -> int:
        return after[kind].get("generateContent", 0) - before[kind].get("generateContent", 0)

    cancelled_after = metric(agent, "vaia_requests_cancelled_total")
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
    agent: Server, gemini: Server, clients: int = 600, seconds: float = 20, gemini_s: float = 1.0
) -> Overload:
    control(gemini, latency_ms=gemini_s * 1000)
    argv = [sys.executable, "-m", "devstack.perf.clients", "load", "--url", agent.url]
    argv += ["--clients", str(clients), "--seconds", f"{seconds:g}"]
    with (
        server(HELLO, "/docs", {}) as hello,
        OperationsProbe(agent.url, control=hello.url + "/hello") as probe,
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise DevstackError("the load clients failed", done.stderr[-2000:])
    load = json.loads(done.stdout.strip().splitlines()[-1])
    return Overload(clients, seconds, gemini_s, load, probe.times_ms, probe.control_ms)


def serving_bench(
    agent_from: Path | None = None,
    quota_questions: int = 7,
    quota_every_s: float = 6.0,
    hang_up_clients: int = 40,
    hang_up_gemini_s: float = 3.0,
    overload_clients: int = 600,
    overload_seconds: float = 20,
) -> ServingBench:
    """Every scenario with the issue's figures by default (shorter ones for tests), each on an
    agent of its own: a breaker the quota opened must not answer the next scenario offline."""
    with tempfile.TemporaryDirectory() as tmp, standin() as gemini:
        env = agent_env(gemini, CHROMA_PATH=f"{tmp}/chroma")
        if agent_from is not None:
            env["PYTHONPATH"] = str(agent_from)

        def agent() -> contextlib.AbstractContextManager[Server]:
            return server(["-m", "agent", "serve"], "/ready", env, cwd=agent_from)

        with agent() as running:
            quota = quota_scenario(running, gemini, quota_questions, quota_every_s)
        with agent() as running:
            hung = hang_up_scenario(running, gemini, hang_up_clients, gemini_s=hang_up_gemini_s)
        with agent() as running:
            overload = overload_scenario(running, gemini, overload_clients, overload_seconds)
    return ServingBench(quota, hung, overload, str(agent_from or "this checkout"))


def _ms(value: object) -> str:
    return "" if value is None else f"{float(value):.0f}"  # type: ignore[arg-type]


def serving_table(result: ServingBench) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    q, h, o = result.quota, result.hang_up, result.overload
    statuses = o.load["statuses"]
    assert isinstance(statuses, dict)
    answered = statuses.get("200", 0)
    shed = statuses.get("503", 0) + statuses.get("429", 0)
    others = sum(v for k, v in statuses.items() if k not in ("200", "503", "429"))
    errors = o.load["errors"]
    assert isinstance(errors, dict)
    ops = {path: percentile(times, 0.99) for path, times in o.operations_ms.items()}
    columns = ("scenario", "measure", "value", "goal")
    rows = [
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
            f"{o.clients} clients for {o.seconds:g} s, Gemini {o.gemini_s:g} s",
            "answered (200) / refused (503, 429) / other / no answer",
            f"{answered} / {shed} / {others} / {sum(errors.values())}",
            "refusals",
        ),
        (
            "",
            "answered: p50 / p95 / max",
            f"{_ms(o.load['answered_p50_ms'])} / {_ms(o.load['answered_p95_ms'])} / "
            f"{_ms(o.load['answered_max_ms'])} ms",
            "bounded",
        ),
        ("", "refused: max", f"{_ms(o.load['shed_max_ms'])} ms", "at once"),
        (
            "",
            "/health, /ready, /metrics: p99 (max of all)",
            f"{' / '.join(_ms(v) for v in ops.values())} ms ({o.operations_max_ms():.0f})",
            "< 100 ms",
        ),
        (
            "",
            "control: a bare uvicorn's /hello meanwhile, p99 (max)",
            f"{_ms(percentile(o.control_ms, 0.99))} ms ({max(o.control_ms, default=0):.0f})",
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
        "unique. The operations endpoints are probed one request at a time from another "
        "process while the overload runs.",
        "",
        *markdown(*serving_table(result)),
        "",
    ]

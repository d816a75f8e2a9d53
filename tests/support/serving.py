"""The agent served for real, for the serving tests: the Gemini stand-in in its own process
(devstack/perf/gemini_standin.py: slow, streaming, out of quota, and counting the calls its
client abandoned) and the agent in its own (`python -m agent serve`), on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import agent_environment, free_port, wait_until

__all__ = ["Agent", "StandIn", "agent_process", "gemini_process"]


@dataclass(frozen=True)
class StandIn:
    url: str

    def control(self, **behaviour: Any) -> None:
        httpx.post(self.url + "/control", json=behaviour, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.url + "/stats", timeout=5).json()
        return stats

    def count(self, kind: str, method: str = "generateContent") -> int:
        """Calls of `method` so far: `calls` (arrived), `completed` or `abandoned`."""
        return int(self.stats()[kind].get(method, 0))

    def settle(self, timeout: float = 30) -> None:
        """Until no call is in flight."""
        wait_until(lambda: self.stats()["in_flight"] == 0, timeout, "the stand-in's calls")


@contextmanager
def gemini_process(**behaviour: Any) -> Iterator[StandIn]:
    port = free_port()
    argv = [sys.executable, "-m", "devstack.perf.gemini_standin", "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    standin = StandIn(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: httpx.get(standin.url + "/health").status_code == 200, 30, "stand-in")
        if behaviour:
            standin.control(**behaviour)
        yield standin
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class Agent:
    url: str
    pid: int

    def metric(self, name: str, **labels: str) -> float | None:
        """The sum of the samples of `name` whose labels include `labels`; None when none."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        found = None
        for match in re.finditer(rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                found = (found or 0.0) + float(match.group(2))
        return found


# A folder holding another `agent` package (an older commit's, `git archive <sha> agent`): the
# serving tests then run against it, to show what they catch (each fails on the code before #19).
AGENT_FROM = os.environ.get("VAIA_TEST_AGENT_FROM")


@contextmanager
def agent_process(tmp_path: Path, gemini: StandIn | None, **env: str) -> Iterator[Agent]:
    """The agent on a free port (Gemini the stand-in, or offline without one), ready with the
    shipped runbooks seeded; stopped with SIGTERM."""
    port = free_port()
    environment = agent_environment(
        CHROMA_PATH=str(tmp_path / f"chroma-{port}"),
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="warning",
        RATE_LIMIT_PER_MINUTE="0",
        LLM_PROVIDER="offline",
    )
    if gemini is not None:
        environment.update(
            LLM_PROVIDER="gemini", GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url
        )
    environment.update(env)
    if AGENT_FROM:
        environment["PYTHONPATH"] = AGENT_FROM
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=AGENT_FROM,  # `python -m` puts the working directory first on sys.path
    )
    agent = Agent(f"http://127.0.0.1:{port}", proc.pid)
    try:
        wait_until(
            lambda: httpx.get(agent.url + "/ready").json()["checks"]["knowledge_seed"] == "done",
            60,
            "the agent",
        )
        yield agent
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def elapsed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started

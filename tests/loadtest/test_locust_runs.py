"""Short headless locust runs (bounded to 8 s each) against a real agent on 127.0.0.1, and the
verdict computed from their real statistics: a passing run and two failing ones."""

import subprocess
import sys

import httpx
import pytest

from devstack.perf.loadtest import Objectives, overall, run
from tests.support.processes import agent_environment, free_port, wait_until

pytestmark = pytest.mark.load


def start_agent(tmp_path, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = agent_environment()
    environment.update(
        {
            "CHROMA_PATH": str(tmp_path / "chroma"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LLM_PROVIDER": "offline",
            "LOG_LEVEL": "warning",
            "RATE_LIMIT_PER_MINUTE": "0",
            **env,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(base + "/ready").json()["checks"]["knowledge_seed"] == "done", 60, "agent"
    )
    return proc, base


@pytest.fixture
def agent(request, tmp_path):
    proc, base = start_agent(tmp_path, **getattr(request, "param", {}))
    yield base
    proc.terminate()
    proc.wait(15)


def test_a_healthy_agent_passes_with_autoscaling_skipped(agent, tmp_path) -> None:
    criteria, summary = run(
        agent,
        users=6,
        spawn_rate=6,
        duration_s=8,
        report_dir=tmp_path / "report",
        objectives=Objectives(p95_ms=1000),
        hpa_api=None,
    )
    by_name = {c.name: c for c in criteria}
    assert by_name["autoscaling"].status == "SKIPPED"  # no cluster: skipped, never passed
    assert by_name["error rate"].status == "PASS" and by_name["p95 latency"].status == "PASS"
    assert overall(criteria) == "PASS"
    requests = int(by_name["error rate"].measured.split(" of ")[1].split()[0])
    assert requests > 50
    assert "**Verdict: PASS**" in summary.read_text()
    names = {
        row.split(",")[1]
        for row in (tmp_path / "report" / "locust_stats.csv").read_text().splitlines()[1:]
    }
    assert {
        "infer: popular (cache hit)",
        "infer: unique (cache miss)",
        "infer: session",
        "health",
    } <= names


def short_run(agent: str, tmp_path, users: int, p95_ms: float):
    criteria, _ = run(
        agent,
        users=users,
        spawn_rate=users,
        duration_s=8,
        report_dir=tmp_path / "report",
        objectives=Objectives(p95_ms=p95_ms),
        hpa_api=None,
    )
    return criteria


@pytest.mark.parametrize("agent", [{"FAULT_ERROR_RATE": "0.3"}], indirect=True)
def test_an_error_rate_fails_the_verdict(agent, tmp_path) -> None:
    criteria = short_run(agent, tmp_path, users=6, p95_ms=1000)
    error_rate = next(c for c in criteria if c.name == "error rate")
    assert error_rate.status == "FAIL"
    assert float(error_rate.measured.split("%")[0]) > 5
    assert overall(criteria) == "FAIL"


@pytest.mark.parametrize("agent", [{"FAULT_LATENCY_MS": "250"}], indirect=True)
def test_latency_over_the_objective_fails_the_verdict(agent, tmp_path) -> None:
    criteria = short_run(agent, tmp_path, users=4, p95_ms=100)
    latency = next(c for c in criteria if c.name == "p95 latency")
    assert latency.status == "FAIL" and int(latency.measured.split()[0]) >= 250
    assert overall(criteria) == "FAIL"

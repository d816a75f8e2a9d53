"""Short headless locust runs (bounded to 8 s each) against a real agent on 127.0.0.1, and the
verdict computed from their real statistics: a passing run and two failing ones."""

import subprocess
import sys

import pytest

from devstack.harness import services
from devstack.perf.loadtest import Objectives, overall, run
from tests.conftest import ROOT
from tests.support.processes import agent_environment, invoke_dev

pytestmark = pytest.mark.load


@pytest.fixture
def agent(request, tmp_path):
    """An offline agent (`python -m agent serve`), with the test's settings if it has some."""
    with services.agent(tmp_path, **getattr(request, "param", {})) as running:
        yield running.url


def test_a_healthy_agent_passes_with_autoscaling_skipped(agent, tmp_path) -> None:
    criteria, summary, _ = run(
        agent,
        users=6,
        spawn_rate=6,
        duration_s=8,
        report_dir=tmp_path / "report",
        objectives=Objectives(p95_ms=1000),
        cluster=None,
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
        "infer: stream",
        "infer: stream (time to first token)",
        "health",
    } <= names
    text = summary.read_text()
    assert "| time to first token |" in text and "| end to end (the done event) |" in text


def short_run(agent: str, tmp_path, users: int, p95_ms: float):
    criteria, _, _ = run(
        agent,
        users=users,
        spawn_rate=users,
        duration_s=8,
        report_dir=tmp_path / "report",
        objectives=Objectives(p95_ms=p95_ms),
        cluster=None,
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


@pytest.mark.parametrize("agent", [{"RATE_LIMIT_PER_MINUTE": "30"}], indirect=True)
def test_a_limiter_that_answers_instead_of_the_service_is_its_own_failure(agent, tmp_path) -> None:
    criteria = short_run(agent, tmp_path, users=6, p95_ms=1000)
    by_name = {c.name: c for c in criteria}
    assert by_name["error rate"].status == "PASS"  # a 429 is not the service failing
    assert by_name["rate limited (429)"].status == "FAIL"
    assert overall(criteria) == "FAIL"


@pytest.mark.parametrize(
    "agent", [{"MAX_INFLIGHT_REQUESTS": "1", "FAULT_LATENCY_MS": "300"}], indirect=True
)
def test_shed_requests_are_their_own_criterion_not_errors(agent, tmp_path) -> None:
    criteria = short_run(agent, tmp_path, users=8, p95_ms=5000)
    by_name = {c.name: c for c in criteria}
    assert by_name["error rate"].status == "PASS"  # a refusal is not the service failing
    shed = by_name["shed (503 overloaded)"]
    assert shed.status == "FAIL" and float(shed.measured.split("%")[0]) > 5
    assert overall(criteria) == "FAIL"


def test_the_readmes_pair_passes_with_its_defaults(tmp_path) -> None:
    """`invoke dev`, then `invoke loadtest --host ... --no-hpa`, as the docs write them (only the
    duration and the users are shorter)."""
    env = agent_environment(CHROMA_PATH=str(tmp_path / "chroma"), COLUMNS="200")
    with invoke_dev(ROOT, env, "--no-reload") as (base, _):
        report = str(tmp_path / "report")
        loadtest = ["loadtest", "--host", base, "--no-hpa", "--duration", "8s", "--users", "20"]
        done = subprocess.run(
            [sys.executable, "-m", "invoke", *loadtest, "--report-dir", report],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "verdict: PASS" in done.stdout
    assert "rate limited (429)" in done.stdout

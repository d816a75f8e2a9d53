"""`invoke bench --serving`: the table from fixed results (unit), and the scenarios on short real
runs against the stand-in and an agent, each in its own process (the figures are not asserted,
only that each scenario measured something)."""

import pytest

from devstack.perf.loadtest import Percentiles
from devstack.perf.serving import (
    HangUp,
    Overload,
    Quota,
    ServingBench,
    serving_bench,
    serving_block,
    serving_table,
)

OVERLOAD = Overload(
    600,
    20,
    1.0,
    Percentiles(4934.0, 6880.0, 2700, 9994.0),
    Percentiles(None, None),
    {"ConnectionResetError(104, 'Connection reset by peer')": 2, "status 500": 1},
    {"/health": [5.0, 82.0], "/ready": [648.0], "/metrics": [262.0]},
    [3.0, 41.0],
)
CALM = Overload(
    600,
    20,
    1.0,
    Percentiles(1000.0, 1200.0, 1800, 1400.0),
    Percentiles(2.0, 9.0, 9000, 30.0),
    {},
    {"/health": [5.0, 12.0], "/ready": [8.0], "/metrics": [20.0]},
    [3.0, 5.0],
    0.42,
)
RESULT = ServingBench(
    Quota(36.2, [0.2, 5.8, 0.1], [True, True, True], 28),
    HangUp(40, 0.3, 3.0, 40, 0, None),
    [OVERLOAD, CALM],
    "/tmp/before",
)


@pytest.mark.unit
def test_the_serving_table_gives_each_scenarios_figures_and_goal() -> None:
    columns, rows = serving_table(RESULT)
    assert all(len(row) == len(columns) for row in rows)
    values = {row[1]: row[2] for row in rows}
    assert values["slowest question"] == "5.80 s"
    assert values["generate calls that reached Gemini"] == "28"
    assert values["generate calls run to completion"] == "40"
    assert values["vaia_requests_cancelled_total"] == ""  # the agent had no such counter
    counts = "answered (200) / refused (503, 429) / other / no answer, all runs"
    assert values[counts] == "4500 / 9000 / 1 / 2"
    assert values["answered: p50 / p95 / max (range over the runs)"] == (
        "1000-4934 ms / 1200-6880 ms / 1400-9994 ms"
    )
    assert values["/ready: p99"] == "8-648 ms"
    assert values["/health, /ready, /metrics: the slowest answer, run by run"] == "648, 20 ms"
    assert values["runs with every probe answered within 500 ms"] == "1 of 2"
    assert values["the agent's CPU meanwhile, cores"] == "0.42"  # the run that measured it
    assert values["control: a bare uvicorn's /hello meanwhile, p99 / max"] == "5-41 ms / 5-41 ms"
    block = serving_block(RESULT, "2 cores")
    assert "agent: /tmp/before" in block[0]


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_serving_run_measures_every_scenario() -> None:
    result = serving_bench(
        quota_questions=2,
        quota_every_s=1,
        hang_up_clients=3,
        hang_up_gemini_s=1,
        overload_clients=20,
        overload_seconds=3,  # Gemini takes 1 s: some answers come within the run
        overload_runs=2,
    )
    assert len(result.quota.latencies_s) == 2 and all(result.quota.degraded)
    assert result.hang_up.completed + result.hang_up.abandoned <= 3
    assert len(result.overloads) == 2
    for overload in result.overloads:
        assert overload.answered.count + overload.refused.count + sum(overload.failures.values())
        assert all(overload.operations_ms.values())  # each endpoint was probed
        assert overload.control_ms  # and the bare server alike
        assert overload.agent_cores is not None and overload.agent_cores > 0

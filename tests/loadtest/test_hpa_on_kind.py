"""The HPA for real, as `inner-loop.yml` runs it: `invoke up --ci` (here with `--offline
--node-image`), then `invoke loadtest --users 40 --duration 90s` against what Tilt deployed on
kind's nodes drives real CPU in the agent pods, metrics-server reads it from the kubelets, the
real HPA scales the Deployment out, and the report puts the capacity model's prediction beside
what the HPA did. A bounded load on 127.0.0.1 (through a port-forward)."""

import re

import pytest

from devstack.core.names import IMAGE, NAMESPACE
from tests.support.cluster import UP, fresh_namespace, get, invoke, wait_for

pytestmark = pytest.mark.cluster


def settled() -> bool:
    """The HPA at its minimum and under its target: the agent pods idle after their start."""
    hpa = get("-n", NAMESPACE, "get", f"hpa/{IMAGE}")
    status, spec = hpa["status"], hpa["spec"]
    target = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
    current = [
        m["resource"]["current"].get("averageUtilization")
        for m in status.get("currentMetrics") or []
        if m.get("resource")
    ]
    return (
        status.get("currentReplicas") == spec["minReplicas"]
        and bool(current)
        and current[0] is not None
        and current[0] < target
    )


def test_the_load_test_makes_the_real_hpa_scale_out_and_reports_the_capacity_model(
    kind_cluster, tmp_path
) -> None:
    fresh_namespace()
    invoke(*UP, timeout=1500)
    wait_for(settled, 240, "the HPA at its minimum, under its target")
    output = invoke(
        "loadtest", "--users", "40", "--duration", "90s", "--report-dir", str(tmp_path),
        timeout=600,
    )  # fmt: skip
    assert "verdict: PASS" in output
    summary = (tmp_path / "summary.md").read_text()
    [row] = [line for line in summary.splitlines() if line.startswith("| autoscaling |")]
    assert "| PASS |" in row and re.search(r"desired 2 -> [34] at \d+ s", row), row
    assert "## Capacity model" in summary
    peaks = re.search(r"\| peak desired replicas \| (\d) \| (\d) \|", summary)
    assert peaks and int(peaks.group(2)) > 2, summary
    for plot in ("plot.png", "capacity.png"):
        assert (tmp_path / plot).read_bytes().startswith(b"\x89PNG")

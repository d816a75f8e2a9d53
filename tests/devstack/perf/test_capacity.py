"""The capacity model: the HPA's algorithm as Kubernetes documents it (horizontal-pod-autoscale,
"Algorithm details"), on numbers small enough to check by hand."""

import pytest

from devstack.perf.capacity import (
    Autoscaler,
    capacity_lines,
    desired_replicas,
    model,
    predict,
)
from devstack.perf.loadtest import HpaSample, Sample, parse_cpu

pytestmark = pytest.mark.unit
SPEC = Autoscaler(minimum=2, maximum=4, target_percent=20, request_millicores=100)


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [("250m", 250), ("1", 1000), ("12345678n", 12.345678), ("900u", 0.9)],
)
def test_cpu_quantities_read_as_millicores(quantity, millicores) -> None:
    assert parse_cpu(quantity) == pytest.approx(millicores)


def test_the_recommendation_is_ceil_of_current_times_the_ratio() -> None:
    wide = Autoscaler(1, 10, 50, 100)
    assert desired_replicas(1, 200, 100, wide) == 2  # the documentation's example
    assert desired_replicas(3, 50, 100, wide) == 2  # ceil(1.5)
    assert desired_replicas(2, 45, 20, wide) == 5  # ceil(4.5)


def test_within_the_tolerance_nothing_changes_and_the_bounds_hold() -> None:
    assert desired_replicas(3, 21.9, 20, SPEC) == 3  # ratio 1.095: within 10 %
    assert desired_replicas(3, 22.1, 20, SPEC) == 4  # ratio 1.105: ceil(3.3)
    assert desired_replicas(2, 400, 20, SPEC) == 4  # at most the maximum
    assert desired_replicas(3, 1, 20, SPEC) == 2  # at least the minimum


def test_a_load_that_needs_four_pods_is_predicted_at_the_first_sync_and_held_after_it() -> None:
    times = [float(t) for t in range(0, 120, 5)]
    rps = [100.0 if 10 <= t < 90 else 0.0 for t in times]
    # 10m idle a pod, 1 CPU-ms a request: at 100 req/s, 120m over 2 pods = 60 % of a 100m
    # request against a 20 % target: ceil(2 x 3) = 6, held to the maximum of 4.
    predicted = predict(times, rps, 10, 1.0, SPEC, 2)
    assert predicted[0] == (0.0, 2)  # no load yet: 10 % is under the target
    assert dict(predicted)[15.0] == 4
    # The load stops at 90 s; the scale-down waits for 300 s of lower recommendations.
    assert all(replicas == 4 for t, replicas in predicted if t >= 15)


def test_scale_up_is_limited_to_four_pods_or_double_per_fifteen_seconds() -> None:
    wide = Autoscaler(1, 20, 10, 100)
    predicted = predict([0.0, 15.0, 30.0], [1000.0] * 3, 0, 10.0, wide, 1)
    assert [replicas for _, replicas in predicted] == [5, 10, 20]


def test_the_model_takes_the_cpu_one_request_costs_from_the_measurements() -> None:
    idle = HpaSample(0, 2, 2, 2, 4, utilization=10, pods=2, millicores=20)
    loaded = [
        HpaSample(t, 2, 4, 2, 4, utilization=110, pods=2, millicores=220)
        for t in (20.0, 25.0, 30.0)
    ]
    history = [Sample(float(t), 20, 100.0, 50.0) for t in range(0, 40, 2)]
    result = model(SPEC, [idle, *loaded], history)
    assert result.idle_per_pod == 10
    assert result.per_request_millicores == pytest.approx(2.0)  # (220 - 2 x 10) / 100
    assert result.predicted_peak == 4 and result.observed_peak == 4
    text = "\n".join(capacity_lines(result))
    assert "| peak desired replicas | 4 | 4 |" in text

"""The capacity model of a load test on a real cluster: what the HPA should want, predicted from
what was measured, against what it did.

While the load runs, the load test's watcher (loadtest.ClusterWatcher) samples the agent pods'
CPU from metrics-server (the same `metrics.k8s.io` numbers the HPA reads) and the HPA's own
status. Afterwards, the CPU one request
costs is the increase of the pods' CPU over their idle CPU (sampled before the load) divided by
locust's throughput; the HPA's algorithm (kubernetes.io/docs/tasks/run-application/
horizontal-pod-autoscale/#algorithm-details, pkg/controller/podautoscaler in Kubernetes) then
gives the replicas it should want at each moment: `ceil(current x utilization / target)`, no
change within its 10 % tolerance, bounded by min and max, a scale-up that is not stabilized
(the default window is 0 s) and limited to max(4 pods, 100 %) per 15 s, and a scale-down that
takes the highest recommendation of the last 300 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.core.names import IMAGE, NAMESPACE
from devstack.perf.loadtest import ClusterApis, HpaSample, parse_cpu

TOLERANCE = 0.1
SCALE_DOWN_WINDOW_S = 300.0
SCALE_UP_PERIOD_S = 15.0


@dataclass(frozen=True)
class Autoscaler:
    """The HPA's spec and the pods' CPU request, read from the cluster."""

    minimum: int
    maximum: int
    target_percent: int
    request_millicores: float


def desired_replicas(current: int, utilization: float, target: float, spec: Autoscaler) -> int:
    """The HPA's recommendation for one sync, before stabilization."""
    ratio = utilization / target
    wanted = current if abs(ratio - 1) <= TOLERANCE else math.ceil(current * ratio)
    return max(spec.minimum, min(spec.maximum, wanted))


def predict(
    times: Sequence[float], rps: Sequence[float], idle_per_pod: float,
    per_request: float, spec: Autoscaler, start_replicas: int, sync_s: float = 15.0,
) -> list[tuple[float, int]]:  # fmt: skip
    """The replicas the HPA should want at each sync, from the load's throughput over time
    (each pod costs its idle CPU, and the load is shared among the pods)."""
    current = start_replicas
    history: list[tuple[float, int]] = []
    out: list[tuple[float, int]] = []
    next_sync = 0.0
    last_up = -math.inf
    for t, r in zip(times, rps, strict=True):
        if t < next_sync:
            continue
        next_sync = t + sync_s
        used = idle_per_pod * current + per_request * r
        utilization = 100 * used / (current * spec.request_millicores)
        recommendation = desired_replicas(current, utilization, spec.target_percent, spec)
        history.append((t, recommendation))
        if recommendation > current:
            limit = max(current + 4, current * 2) if t - last_up >= SCALE_UP_PERIOD_S else current
            new = min(recommendation, limit)
            last_up = t if new > current else last_up
        else:  # scale down only to the highest recommendation of the window
            window = [r for s, r in history if t - s <= SCALE_DOWN_WINDOW_S]
            new = min(current, max(window))
        current = new
        out.append((t, current))
    return out


def read_autoscaler(apis: ClusterApis) -> Autoscaler:
    """The HPA's spec and the agent container's CPU request, from the cluster."""
    hpa = apis.autoscaling.read_namespaced_horizontal_pod_autoscaler(IMAGE, NAMESPACE)
    target = hpa.spec.metrics[0].resource.target.average_utilization
    deployment = apis.apps.read_namespaced_deployment(IMAGE, NAMESPACE)
    agent = next(c for c in deployment.spec.template.spec.containers if c.name == "agent")
    request = parse_cpu(agent.resources.requests["cpu"])
    return Autoscaler(hpa.spec.min_replicas or 1, hpa.spec.max_replicas, target, request)


@dataclass
class CapacityModel:
    spec: Autoscaler
    idle_per_pod: float  # millicores of an agent pod with no load
    per_request_millicores: float  # CPU-milliseconds of one request (millicores per req/s)
    mean_rps: float
    predicted: list[tuple[float, int]] = field(default_factory=list)
    observed: list[tuple[float, int]] = field(default_factory=list)

    @property
    def predicted_peak(self) -> int:
        return max((r for _, r in self.predicted), default=self.spec.minimum)

    @property
    def observed_peak(self) -> int:
        return max((r for _, r in self.observed), default=self.spec.minimum)

    @staticmethod
    def first_above(series: list[tuple[float, int]], minimum: int) -> float | None:
        return next((t for t, r in series if r > minimum), None)


def model(spec: Autoscaler, samples: list[HpaSample], history: list[Any]) -> CapacityModel:
    """The model from the watcher's samples (the first taken before the load: the idle pods)
    and locust's history (elapsed_s, rps)."""
    idle = samples[0]
    loaded = [  # past ramp-up and a window
        s for s in samples[1:] if s.elapsed_s > 15 and s.pods and s.millicores is not None
    ]
    times = [h.elapsed_s for h in history]
    rates = [h.rps for h in history]
    busy = [r for t, r in zip(times, rates, strict=True) if t > 15]
    mean_rps = sum(busy) / len(busy) if busy else 0.0
    idle_per_pod = (idle.millicores or 0.0) / idle.pods if idle.pods else 0.0
    # The load's share of the CPU: what the pods used beyond what as many idle pods use.
    extra = [(s.millicores or 0.0) - idle_per_pod * (s.pods or 0) for s in loaded]
    per_request = max(sum(extra) / len(extra), 0.0) / mean_rps if extra and mean_rps else 0.0
    start = max(idle.current, spec.minimum)
    predicted = predict(times, rates, idle_per_pod, per_request, spec, start)
    observed = [(s.elapsed_s, s.desired) for s in samples[1:]]
    return CapacityModel(spec, idle_per_pod, per_request, mean_rps, predicted, observed)


def capacity_lines(result: CapacityModel) -> list[str]:
    spec = result.spec
    first_predicted = CapacityModel.first_above(result.predicted, spec.minimum)
    first_observed = CapacityModel.first_above(result.observed, spec.minimum)

    def at(value: float | None) -> str:
        return f"{value:.0f} s" if value is not None else "never"

    return [
        "## Capacity model",
        "",
        f"The HPA: {spec.minimum} to {spec.maximum} replicas, target {spec.target_percent} % of "
        f"a {spec.request_millicores:.0f}m CPU request. Measured: an idle agent pod "
        f"{result.idle_per_pod:.0f}m, one request {result.per_request_millicores:.1f} "
        f"CPU-milliseconds, {result.mean_rps:.1f} req/s once loaded.",
        "",
        "| | predicted | observed |",
        "| --- | --- | --- |",
        f"| peak desired replicas | {result.predicted_peak} | {result.observed_peak} |",
        f"| first scale-out after the load started | {at(first_predicted)} "
        f"| {at(first_observed)} |",
        "",
        "Predicted: the HPA's algorithm (ceil(current x utilization / target), 10 % tolerance, "
        "min/max, scale-up limited to max(4 pods, 100 %) per 15 s, scale-down to the highest "
        "recommendation of 300 s) at each 15 s sync on the measured throughput; it does not "
        "model metrics-server's 15 s window, so the observed first scale-out comes later.",
        "",
    ]


def plot_capacity(result: CapacityModel, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.5))
    if result.predicted:
        axes.step(*zip(*result.predicted, strict=True), where="post", label="predicted desired")
    if result.observed:
        axes.step(*zip(*result.observed, strict=True), where="post", label="observed desired")
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("replicas")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

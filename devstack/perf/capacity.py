"""The capacity model of a load test on a real cluster: what the HPA should want, predicted from
what was measured, against what it did.

While the load runs, a watcher samples the agent pods' CPU from metrics-server (the same
`metrics.k8s.io` numbers the HPA reads) and the HPA's own status. Afterwards, the CPU one request
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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.core.names import IMAGE, NAMESPACE

TOLERANCE = 0.1
SCALE_DOWN_WINDOW_S = 300.0
SCALE_UP_PERIOD_S = 15.0


@dataclass(frozen=True)
class ClusterSample:
    elapsed_s: float
    pods: int  # agent pods metrics-server reports on
    millicores: float  # their CPU, summed
    current: int  # the HPA's currentReplicas
    desired: int
    utilization: int | None  # the HPA's own view, % of the request


@dataclass(frozen=True)
class Autoscaler:
    """The HPA's spec and the pods' CPU request, read from the cluster."""

    minimum: int
    maximum: int
    target_percent: int
    request_millicores: float


def parse_cpu(quantity: str) -> float:
    """A Kubernetes CPU quantity in millicores: 250m, 1, 12345678n, 900u."""
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0}
    if quantity[-1] in units:
        return float(quantity[:-1]) * units[quantity[-1]]
    return float(quantity) * 1000


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


class ClusterWatcher:
    """Samples the agent pods' CPU and the HPA while the load runs (a thread)."""

    def __init__(self, context: str, interval_s: float = 5.0) -> None:
        from kubernetes import client, config

        config.load_kube_config(context=context)
        self.metrics = client.CustomObjectsApi()
        self.autoscaling = client.AutoscalingV2Api()
        self.apps = client.AppsV1Api()
        self.interval_s = interval_s
        self.samples: list[ClusterSample] = []
        self.missed: list[str] = []
        self.idle: ClusterSample | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def spec(self) -> Autoscaler:
        hpa = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(IMAGE, NAMESPACE)
        target = hpa.spec.metrics[0].resource.target.average_utilization
        deployment = self.apps.read_namespaced_deployment(IMAGE, NAMESPACE)
        agent = next(c for c in deployment.spec.template.spec.containers if c.name == "agent")
        request = parse_cpu(agent.resources.requests["cpu"])
        return Autoscaler(hpa.spec.min_replicas or 1, hpa.spec.max_replicas, target, request)

    def sample(self) -> ClusterSample:
        pods = self.metrics.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", NAMESPACE, "pods",
            label_selector=f"app.kubernetes.io/name={IMAGE}",
        )["items"]  # fmt: skip
        used = sum(parse_cpu(c["usage"]["cpu"]) for p in pods for c in p["containers"])
        status = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(IMAGE, NAMESPACE).status
        utilization = None
        for metric in status.current_metrics or []:
            if metric.resource is not None:
                utilization = metric.resource.current.average_utilization
        return ClusterSample(
            time.monotonic() - self._started, len(pods), used,
            status.current_replicas or 0, status.desired_replicas or 0, utilization,
        )  # fmt: skip

    def __enter__(self) -> ClusterWatcher:
        self._started = time.monotonic()
        self.idle = self.sample()
        self._started = time.monotonic()  # the load starts now: elapsed times from here
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # a missed sample is a gap in the curve, no more
                self.missed.append(str(exc))


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


def model(
    spec: Autoscaler, idle: ClusterSample, samples: list[ClusterSample], history: list[Any]
) -> CapacityModel:
    """The model from the watcher's samples and locust's history (elapsed_s, rps)."""
    loaded = [s for s in samples if s.elapsed_s > 15 and s.pods]  # past ramp-up and a window
    times = [h.elapsed_s for h in history]
    rates = [h.rps for h in history]
    busy = [r for t, r in zip(times, rates, strict=True) if t > 15]
    mean_rps = sum(busy) / len(busy) if busy else 0.0
    idle_per_pod = idle.millicores / idle.pods if idle.pods else 0.0
    # The load's share of the CPU: what the pods used beyond what as many idle pods use.
    extra = [s.millicores - idle_per_pod * s.pods for s in loaded]
    per_request = max(sum(extra) / len(extra), 0.0) / mean_rps if extra and mean_rps else 0.0
    start = max(idle.current, spec.minimum)
    predicted = predict(times, rates, idle_per_pod, per_request, spec, start)
    observed = [(s.elapsed_s, s.desired) for s in samples]
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

"""`invoke loadtest`: headless locust, a watcher of the HPA and the agent pods' CPU, a verdict
with evidence, and a report.

The one place that calls locust (the load test's locustfile, and the benchmarks' closed loop,
devstack/perf/closed_loop.py). The verdict is PASS only when every criterion that was measured
passed; the autoscaling criterion is SKIPPED (never passed) when there is no cluster to watch.
"""

from __future__ import annotations

import csv
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devstack.core.errors import CommandError, DevstackError, UsageError
from devstack.core.names import IMAGE, NAMESPACE, REPO
from devstack.core.runner import Runner

LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
Status = Literal["PASS", "FAIL", "SKIPPED"]


@dataclass(frozen=True)
class Objectives:
    max_error_rate: float = 0.01
    p95_ms: float = 500.0
    scale_out_within_s: float = 180.0


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    users: int
    rps: float
    p95_ms: float | None


@dataclass(frozen=True)
class Percentiles:
    """One entry of locust's statistics (a request name)."""

    p50_ms: float | None
    p95_ms: float | None
    count: int = 0
    max_ms: float | None = None
    failures: int = 0


@dataclass(frozen=True)
class Streaming:
    """The streamed answers: end to end (to the `done` event) and to their first text."""

    end_to_end: Percentiles
    first_token: Percentiles
    first_token_history: list[tuple[float, float | None]] = field(default_factory=list)


@dataclass(frozen=True)
class LoadStats:
    requests: int
    failures: int  # 429s and shed 503s included
    p95_ms: float
    rps: float
    history: list[Sample] = field(default_factory=list)
    rate_limited: int = 0  # answered 429: the limiter, not the service
    shed: int = 0  # answered 503 overloaded: past MAX_INFLIGHT_REQUESTS, refused at once
    streaming: Streaming | None = None
    entries: dict[str, Percentiles] = field(default_factory=dict)  # by name
    failures_by_error: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        """Failures of the service: everything but 429s and shed requests."""
        service_failures = self.failures - self.rate_limited - self.shed
        return service_failures / self.requests if self.requests else 1.0

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0

    @property
    def shed_share(self) -> float:
        return self.shed / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class HpaSample:
    """The HPA's status and, when sampled, the agent pods' CPU from metrics-server (the numbers
    the HPA reads): what the verdict and the capacity model (capacity.py) are computed from."""

    elapsed_s: float
    current: int
    desired: int
    minimum: int
    maximum: int
    utilization: int | None = None  # the HPA's own view, % of the pods' CPU request
    pods: int | None = None  # agent pods metrics-server reports on (None: not sampled)
    millicores: float | None = None  # their CPU, summed


@dataclass(frozen=True)
class Criterion:
    name: str
    status: Status
    measured: str
    objective: str


class HpaWatchError(DevstackError):
    """The HPA cannot be read: no cluster, no context, or the API refused."""


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(text: str) -> int:
    """Seconds from what locust's --run-time takes: `90`, `90s`, `2m`, `1h30m`."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise UsageError(f"--duration {text!r}: seconds (90), or locust's 90s, 2m, 1h30m forms")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError(f"--duration {text!r} must be longer than zero")
    return total


# --- locust ---------------------------------------------------------------------------------


def run_locust(
    host: str,
    users: int,
    spawn_rate: float,
    duration_s: int,
    report_dir: Path,
    locustfile: Path = LOCUSTFILE,
    user_classes: Sequence[str] = (),
) -> LoadStats:
    """Headless locust for `duration_s` (its users of `user_classes`, default all the
    locustfile's); the statistics of its CSV files in `report_dir`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    prefix = report_dir / "locust"
    argv = [
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{duration_s}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        str(report_dir / "locust.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *user_classes,
    ]
    done = Runner().run("locust", *argv, check=False, timeout=duration_s + 120)
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():  # locust exits 1 when any request failed; no CSV is a real error
        raise CommandError(
            f"locust did not run (exit {done.returncode})", detail=done.stderr[-2000:]
        )
    return parse_stats(prefix)


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# The locustfile's names for the streamed answers (loadtest/locustfile.py).
STREAM_NAME = "infer: stream"
TTFT_NAME = "infer: stream (time to first token)"


def parse_stats(prefix: Path) -> LoadStats:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    history: list[Sample] = []
    first_token_history: list[tuple[float, float | None]] = []
    history_file = Path(f"{prefix}_stats_history.csv")
    if history_file.exists():
        with history_file.open(newline="") as handle:
            every = list(csv.DictReader(handle))
        aggregated = [row for row in every if row["Name"] == "Aggregated"]
        start = int(aggregated[0]["Timestamp"]) if aggregated else 0
        history = [
            Sample(
                int(r["Timestamp"]) - start,
                int(r["User Count"]),
                _float(r["Requests/s"]) or 0.0,
                _float(r["95%"]),
            )
            for r in aggregated
        ]
        first_token_history = [
            (int(r["Timestamp"]) - start, _float(r["95%"])) for r in every if r["Name"] == TTFT_NAME
        ]
    streaming = None
    if STREAM_NAME in rows:
        streaming = Streaming(
            _percentiles(rows[STREAM_NAME]),
            _percentiles(rows[TTFT_NAME]) if TTFT_NAME in rows else Percentiles(None, None),
            first_token_history,
        )
    failures = Path(f"{prefix}_failures.csv")
    return LoadStats(
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        p95_ms=_float(total["95%"]) or 0.0,
        rps=_float(total["Requests/s"]) or 0.0,
        history=history,
        rate_limited=_failures_matching(failures, "429"),
        shed=_failures_matching(failures, "(shed)"),
        streaming=streaming,
        entries={name: _percentiles(row) for name, row in rows.items() if name != "Aggregated"},
        failures_by_error=_failures_by_error(failures),
    )


def _percentiles(row: dict[str, str]) -> Percentiles:
    return Percentiles(
        _float(row.get("50%", "")),
        _float(row.get("95%", "")),
        int(row["Request Count"]),
        _float(row.get("Max Response Time", "")),
        int(row.get("Failure Count") or 0),
    )


def _failures_by_error(failures_csv: Path) -> dict[str, int]:
    if not failures_csv.exists():
        return {}
    found: dict[str, int] = {}
    with failures_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            found[row["Error"]] = found.get(row["Error"], 0) + int(row["Occurrences"])
    return found


def _failures_matching(failures_csv: Path, text: str) -> int:
    """Failures whose error names `text`: `status 429` (rate limited), `status 503 (shed)`."""
    if not failures_csv.exists():
        return 0
    with failures_csv.open(newline="") as handle:
        return sum(
            int(row["Occurrences"]) for row in csv.DictReader(handle) if text in row["Error"]
        )


# --- the cluster watcher ------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterApis:
    """The Kubernetes APIs the watcher and the capacity model read, on one client."""

    autoscaling: Any
    metrics: Any  # metrics.k8s.io, through the custom objects API
    apps: Any


def cluster_apis(context: str | None = None, host: str | None = None) -> ClusterApis:
    """The official Kubernetes client: from kubeconfig (a context), or a plain host (tests)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if host:
        configuration = client.Configuration()
        configuration.host = host
        api = client.ApiClient(configuration)
    else:
        try:
            # $KUBECONFIG read now, as kubectl reads it: the client reads it once, at import.
            kubeconfig = os.environ.get("KUBECONFIG") or None
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (ConfigException, OSError) as exc:
            raise HpaWatchError(
                f"cannot use the kube context {context or '(current)'} to watch the HPA ({exc}): "
                "run `invoke cluster.up`, or pass --host URL --no-hpa to load any agent"
            ) from exc
    return ClusterApis(
        client.AutoscalingV2Api(api), client.CustomObjectsApi(api), client.AppsV1Api(api)
    )


def read_hpa(api: Any, name: str, namespace: str) -> tuple[int, int, int, int, int | None]:
    """The HPA's current and desired replicas, its bounds and its CPU utilization."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        hpa = api.read_namespaced_horizontal_pod_autoscaler(name, namespace, _request_timeout=5)
    except ApiException as exc:
        raise HpaWatchError(
            f"cannot read HPA {namespace}/{name}: {exc.status} {exc.reason}"
        ) from exc
    except HTTPError as exc:
        raise HpaWatchError(
            f"cannot reach the Kubernetes API for HPA {namespace}/{name}: {exc}"
        ) from exc
    status = hpa.status
    utilization = None
    for metric in status.current_metrics or []:
        if metric.resource is not None:
            utilization = metric.resource.current.average_utilization
    return (
        status.current_replicas or 0,
        status.desired_replicas or 0,
        hpa.spec.min_replicas or 1,
        hpa.spec.max_replicas,
        utilization,
    )


def parse_cpu(quantity: str) -> float:
    """A Kubernetes CPU quantity in millicores: 250m, 1, 12345678n, 900u."""
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0}
    if quantity[-1] in units:
        return float(quantity[:-1]) * units[quantity[-1]]
    return float(quantity) * 1000


def read_pods_cpu(api: Any, name: str, namespace: str) -> tuple[int, float]:
    """The agent pods metrics-server reports on, and their CPU in millicores, summed."""
    pods = api.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", namespace, "pods",
        label_selector=f"app.kubernetes.io/name={name}", _request_timeout=5,
    )["items"]  # fmt: skip
    return len(pods), sum(parse_cpu(c["usage"]["cpu"]) for p in pods for c in p["containers"])


class ClusterWatcher:
    """Samples the HPA, and the agent pods' CPU with `pods_cpu`, in a thread while the load
    runs; the first sample (elapsed 0) is taken on entering, before any load, and fails fast when
    the HPA cannot be read at all. Keeps every sample, the first error reading the HPA (which
    fails the verdict) and the pods' CPU samples missed (a gap in the capacity model's curve)."""

    def __init__(
        self,
        apis: ClusterApis,
        name: str = IMAGE,
        namespace: str = NAMESPACE,
        interval_s: float = 2.0,
        pods_cpu: bool = True,
    ) -> None:
        self.apis, self.name, self.namespace = apis, name, namespace
        self.interval_s, self.pods_cpu = interval_s, pods_cpu
        self.samples: list[HpaSample] = []
        self.error: HpaWatchError | None = None
        self.missed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def __enter__(self) -> ClusterWatcher:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def sample(self) -> HpaSample:
        if not self._started:
            self._started = time.monotonic()
        hpa = read_hpa(self.apis.autoscaling, self.name, self.namespace)
        pods: tuple[int | None, float | None] = (None, None)
        if self.pods_cpu:
            try:
                pods = read_pods_cpu(self.apis.metrics, self.name, self.namespace)
            except Exception as exc:  # a missed sample is a gap in the curve, no more
                self.missed.append(str(exc))
        sample = HpaSample(time.monotonic() - self._started, *hpa, *pods)
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except HpaWatchError as exc:
                self.error = self.error or exc


# --- the verdict ----------------------------------------------------------------------------


def autoscaling_criterion(
    samples: list[HpaSample] | None, error: Exception | None, within_s: float
) -> Criterion:
    objective = f"desired replicas above the minimum within {within_s:.0f} s"
    if samples is None:
        return Criterion("autoscaling", "SKIPPED", "no cluster watched (--no-hpa)", objective)
    if error is not None:
        return Criterion("autoscaling", "FAIL", str(error), objective)
    if not samples:
        return Criterion("autoscaling", "FAIL", "no HPA sample was taken", objective)
    minimum = samples[0].minimum
    scaled = [s for s in samples if s.desired > minimum and s.elapsed_s <= within_s]
    peak = max(s.desired for s in samples)
    if scaled:
        first = scaled[0]
        return Criterion(
            "autoscaling",
            "PASS",
            f"desired {minimum} -> {first.desired} at {first.elapsed_s:.0f} s (peak {peak})",
            objective,
        )
    return Criterion(
        "autoscaling", "FAIL", f"desired replicas stayed at {peak} (minimum {minimum})", objective
    )


def verdict(
    stats: LoadStats,
    objectives: Objectives,
    hpa: list[HpaSample] | None,
    hpa_error: Exception | None = None,
) -> list[Criterion]:
    error_rate = stats.error_rate
    return [
        autoscaling_criterion(hpa, hpa_error, objectives.scale_out_within_s),
        Criterion(
            "error rate",
            "PASS" if error_rate < objectives.max_error_rate else "FAIL",
            f"{error_rate:.2%} of {stats.requests} requests",
            f"under {objectives.max_error_rate:.2%}",
        ),
        Criterion(
            "p95 latency",
            "PASS" if stats.requests and stats.p95_ms < objectives.p95_ms else "FAIL",
            f"{stats.p95_ms:.0f} ms",
            f"under {objectives.p95_ms:.0f} ms",
        ),
        # The load test measures the service; a limiter that answers instead hides it.
        Criterion(
            "rate limited (429)",
            "PASS" if stats.rate_limited_share < objectives.max_error_rate else "FAIL",
            f"{stats.rate_limited_share:.2%} ({stats.rate_limited} requests)",
            f"under {objectives.max_error_rate:.2%} (else: the target's RATE_LIMIT_PER_MINUTE)",
        ),
        # Shedding is the agent protecting itself, not failing: but a load test that is mostly
        # refused measures the refusals. More pods (or MAX_INFLIGHT_REQUESTS) carry it.
        Criterion(
            "shed (503 overloaded)",
            "PASS" if stats.shed_share < objectives.max_error_rate else "FAIL",
            f"{stats.shed_share:.2%} ({stats.shed} requests)",
            f"under {objectives.max_error_rate:.2%} (else: more pods, or MAX_INFLIGHT_REQUESTS)",
        ),
    ]


def streaming_rows(stats: LoadStats) -> list[tuple[str, str, str, str]]:
    """The streamed answers' latencies, for the console, the summary: measure, p50, p95, n."""
    if stats.streaming is None:
        return []

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.0f} ms"

    end, first = stats.streaming.end_to_end, stats.streaming.first_token
    return [
        ("time to first token", ms(first.p50_ms), ms(first.p95_ms), str(first.count)),
        ("end to end (the done event)", ms(end.p50_ms), ms(end.p95_ms), str(end.count)),
    ]


def report_stats(report_dir: Path) -> LoadStats:
    """The statistics of a run whose report is in `report_dir`."""
    return parse_stats(report_dir / "locust")


def overall(criteria: list[Criterion]) -> Status:
    return "FAIL" if any(c.status == "FAIL" for c in criteria) else "PASS"


# --- the report -----------------------------------------------------------------------------


def write_report(
    report_dir: Path,
    criteria: list[Criterion],
    stats: LoadStats,
    hpa: list[HpaSample] | None,
    title: str,
) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = report_dir / "summary.md"
    lines = [
        f"# Load test: {title}",
        "",
        f"**Verdict: {overall(criteria)}**",
        "",
        "| criterion | result | measured | objective |",
        "| --- | --- | --- | --- |",
        *[f"| {c.name} | {c.status} | {c.measured} | {c.objective} |" for c in criteria],
        "",
        f"Requests: {stats.requests}, failures: {stats.failures} "
        f"(of which {stats.rate_limited} rate limited, 429, and {stats.shed} shed, 503), "
        f"throughput: {stats.rps:.1f} req/s, p95: {stats.p95_ms:.0f} ms.",
        "",
        *(
            [
                "| streamed answers | p50 | p95 | answers |",
                "| --- | --- | --- | --- |",
                *[f"| {' | '.join(row)} |" for row in streaming_rows(stats)],
                "",
            ]
            if stats.streaming
            else []
        ),
        "Files: `locust.html`, `locust_stats.csv`, `locust_stats_history.csv`, "
        "`locust_failures.csv`, `plot.png`.",
    ]
    summary.write_text("\n".join(lines) + "\n")
    plot = report_dir / "plot.png"
    _plot(plot, stats, hpa)
    return summary, plot


def _plot(path: Path, stats: LoadStats, hpa: list[HpaSample] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    times = [s.elapsed_s for s in stats.history]
    axes[0].plot(times, [s.rps for s in stats.history], color="tab:blue")
    axes[0].set_ylabel("requests/s")
    axes[1].plot(
        times,
        [s.p95_ms if s.p95_ms is not None else float("nan") for s in stats.history],
        color="tab:red",
        label="all requests",
    )
    if stats.streaming and stats.streaming.first_token_history:
        axes[1].plot(
            [t for t, _ in stats.streaming.first_token_history],
            [v if v is not None else float("nan") for _, v in stats.streaming.first_token_history],
            color="tab:green",
            label="streamed: time to first token",
        )
        axes[1].legend(loc="upper left")
    axes[1].set_ylabel("p95 (ms)")
    if hpa:
        axes[2].step(
            [s.elapsed_s for s in hpa], [s.current for s in hpa], where="post", label="current"
        )
        axes[2].step(
            [s.elapsed_s for s in hpa], [s.desired for s in hpa], where="post", label="desired"
        )
        axes[2].legend(loc="upper left")
    else:
        axes[2].text(
            0.5,
            0.5,
            "no HPA watched (--no-hpa)",
            ha="center",
            va="center",
            transform=axes[2].transAxes,
        )
    axes[2].set_ylabel("replicas")
    axes[2].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(
    host: str,
    users: int,
    spawn_rate: float,
    duration_s: int,
    report_dir: Path,
    objectives: Objectives,
    cluster: ClusterApis | None,
    log: Callable[[str], None] = print,
) -> tuple[list[Criterion], Path, list[HpaSample] | None]:
    """Run the load (watching the cluster when its APIs are given), judge it and write the
    report; the criteria, the summary and the watcher's samples (None: not watched)."""
    if cluster is None:
        stats = run_locust(host, users, spawn_rate, duration_s, report_dir)
        samples, error = None, None
    else:
        with ClusterWatcher(cluster) as watcher:
            log(f"watching HPA {NAMESPACE}/{IMAGE}: {watcher.samples[0]}")
            stats = run_locust(host, users, spawn_rate, duration_s, report_dir)
        samples, error = watcher.samples, watcher.error
    criteria = verdict(stats, objectives, samples, error)
    summary, _ = write_report(
        report_dir, criteria, stats, samples, f"{users} users for {duration_s} s on {host}"
    )
    return criteria, summary, samples

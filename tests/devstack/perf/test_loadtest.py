"""The verdict, the report writer, and the cluster watcher against a stand-in autoscaling/v2 and
metrics.k8s.io API that the real Kubernetes client talks to."""

import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.perf.loadtest import (
    ClusterWatcher,
    HpaSample,
    HpaWatchError,
    LoadStats,
    Objectives,
    Sample,
    cluster_apis,
    overall,
    parse_stats,
    streaming_rows,
    verdict,
    write_report,
)

STATS = LoadStats(
    requests=1000,
    failures=3,
    p95_ms=120,
    rps=50,
    history=[Sample(i, 10, 50.0, 120.0) for i in range(10)],
)


def samples(*desired: int) -> list[HpaSample]:
    return [HpaSample(i * 10.0, d, d, 1, 4) for i, d in enumerate(desired)]


@pytest.mark.unit
def test_all_criteria_pass() -> None:
    criteria = verdict(STATS, Objectives(), samples(1, 1, 3, 4))
    assert [c.status for c in criteria] == ["PASS"] * 5
    assert criteria[0].measured == "desired 1 -> 3 at 20 s (peak 4)"


@pytest.mark.unit
def test_no_scale_out_fails() -> None:
    criteria = verdict(STATS, Objectives(), samples(1, 1, 1))
    assert criteria[0].status == "FAIL" and overall(criteria) == "FAIL"


@pytest.mark.unit
def test_scale_out_too_late_fails() -> None:
    criteria = verdict(STATS, Objectives(scale_out_within_s=15), samples(1, 1, 3))
    assert criteria[0].status == "FAIL"


@pytest.mark.unit
def test_skipped_is_never_passed() -> None:
    criteria = verdict(STATS, Objectives(), None)
    assert criteria[0].status == "SKIPPED"
    assert overall(criteria) == "PASS"  # the measured criteria passed; autoscaling is only skipped


@pytest.mark.unit
def test_error_rate_and_latency_thresholds() -> None:
    bad = LoadStats(requests=100, failures=2, p95_ms=700, rps=10)
    criteria = verdict(bad, Objectives(max_error_rate=0.01, p95_ms=500), None)
    assert [c.status for c in criteria[1:3]] == ["FAIL", "FAIL"]
    assert verdict(LoadStats(0, 0, 0, 0), Objectives(), None)[1].status == "FAIL"  # nothing ran


@pytest.mark.unit
def test_429s_are_reported_apart_from_the_services_errors(tmp_path) -> None:
    prefix = tmp_path / "locust"
    (tmp_path / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,95%,Requests/s\n"
        "POST,infer,100,12,40,10.0\n,Aggregated,100,12,40,10.0\n"
    )
    (tmp_path / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        "POST,infer,\"CatchResponseError('status 429')\",10\n"
        "POST,infer,\"CatchResponseError('status 500')\",2\n"
    )
    stats = parse_stats(prefix)
    assert (stats.failures, stats.rate_limited) == (12, 10)
    by_name = {c.name: c for c in verdict(stats, Objectives(max_error_rate=0.05), None)}
    assert by_name["error rate"].status == "PASS" and by_name["error rate"].measured.startswith(
        "2.00%"
    )
    assert by_name["rate limited (429)"].status == "FAIL"
    assert "RATE_LIMIT_PER_MINUTE" in by_name["rate limited (429)"].objective


STATS_CSV = (
    "Type,Name,Request Count,Failure Count,50%,95%,Requests/s\n"
    "POST,infer: popular (cache hit),80,0,5,9,8.0\n"
    "POST,infer: stream,20,5,1100,1400,2.0\n"
    "TTFT,infer: stream (time to first token),15,0,230,310,1.5\n"
    ",Aggregated,100,5,10,1300,10.0\n"
)
HISTORY_CSV = (
    "Timestamp,User Count,Type,Name,Requests/s,95%\n"
    "100,6,TTFT,infer: stream (time to first token),1.0,300\n"
    "100,6,,Aggregated,10.0,1300\n"
    "101,6,TTFT,infer: stream (time to first token),1.0,320\n"
    "101,6,,Aggregated,10.0,1250\n"
)


@pytest.mark.unit
def test_shed_requests_are_reported_apart_from_the_services_errors(tmp_path) -> None:
    (tmp_path / "locust_stats.csv").write_text(STATS_CSV)
    (tmp_path / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        "POST,infer: stream,\"CatchResponseError('status 503 (shed)')\",4\n"
        "POST,infer: stream,\"CatchResponseError('status 503')\",1\n"
    )
    stats = parse_stats(tmp_path / "locust")
    assert (stats.failures, stats.shed, stats.rate_limited) == (5, 4, 0)
    by_name = {c.name: c for c in verdict(stats, Objectives(max_error_rate=0.02), None)}
    assert by_name["error rate"].measured.startswith("1.00%")  # the unexplained 503 only
    assert by_name["shed (503 overloaded)"].status == "FAIL"
    assert "MAX_INFLIGHT_REQUESTS" in by_name["shed (503 overloaded)"].objective


@pytest.mark.unit
def test_streamed_answers_are_reported_with_their_time_to_first_token(tmp_path) -> None:
    (tmp_path / "locust_stats.csv").write_text(STATS_CSV)
    (tmp_path / "locust_stats_history.csv").write_text(HISTORY_CSV)
    stats = parse_stats(tmp_path / "locust")
    assert stats.requests == 100  # the aggregate: TTFT entries are not requests
    assert stats.streaming is not None
    assert (stats.streaming.first_token.p50_ms, stats.streaming.first_token.p95_ms) == (230, 310)
    assert (stats.streaming.end_to_end.p50_ms, stats.streaming.end_to_end.p95_ms) == (1100, 1400)
    assert stats.streaming.first_token_history == [(0, 300), (1, 320)]
    assert streaming_rows(stats)[0] == ("time to first token", "230 ms", "310 ms", "15")
    criteria = verdict(stats, Objectives(p95_ms=2000), None)
    summary, plot = write_report(tmp_path, criteria, stats, None, "unit")
    text = summary.read_text()
    assert "| time to first token | 230 ms | 310 ms | 15 |" in text
    assert "| end to end (the done event) | 1100 ms | 1400 ms | 20 |" in text
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.unit
def test_report_has_markdown_and_a_valid_png(tmp_path) -> None:
    criteria = verdict(STATS, Objectives(), samples(1, 2, 3))
    summary, plot = write_report(tmp_path, criteria, STATS, samples(1, 2, 3), "unit")
    text = summary.read_text()
    assert (
        "**Verdict: PASS**" in text
        and "| autoscaling | PASS | desired 1 -> 2 at 10 s (peak 3) |" in text
    )
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (800, 700)


METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/vaia/pods"


class FakeAutoscaling:
    """Serves GET .../namespaces/vaia/horizontalpodautoscalers/vaia-agent like the API server,
    and the agent pods' metrics as metrics-server does (`pods_cpu`: each pod's containers' CPU;
    None: not found, as when metrics-server is not installed)."""

    def __init__(
        self,
        script: list[tuple[int, int]] | None = None,
        status: int = 200,
        pods_cpu: list[list[str]] | None = None,
    ) -> None:
        self.script = list(script or [])
        self.status = status
        self.pods_cpu = pods_cpu
        self.requests: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin.requests.append(self.path)
                if standin.status != 200:
                    body = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "code": standin.status,
                        "reason": "Forbidden",
                        "message": "forbidden",
                    }
                    code = standin.status
                elif self.path.startswith(METRICS + "?") and standin.pods_cpu is not None:
                    query = parse_qs(urlsplit(self.path).query)
                    agents = query.get("labelSelector") == ["app.kubernetes.io/name=vaia-agent"]
                    body, code = (standin.pod_metrics(), 200) if agents else ({}, 400)
                elif (
                    self.path
                    != "/apis/autoscaling/v2/namespaces/vaia/horizontalpodautoscalers/vaia-agent"
                ):
                    body, code = {"kind": "Status", "code": 404, "reason": "NotFound"}, 404
                else:
                    current, desired = (
                        standin.script.pop(0) if len(standin.script) > 1 else standin.script[0]
                    )
                    body, code = standin.hpa(current, desired), 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @staticmethod
    def hpa(current: int, desired: int) -> dict:
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "vaia-agent", "namespace": "vaia"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "vaia-agent",
                },
                "minReplicas": 1,
                "maxReplicas": 4,
            },
            "status": {"currentReplicas": current, "desiredReplicas": desired},
        }

    def pod_metrics(self) -> dict:
        pods = [
            {"metadata": {"name": f"vaia-agent-{i}"}, "containers": [
                {"name": f"c{j}", "usage": {"cpu": cpu, "memory": "100Mi"}}
                for j, cpu in enumerate(containers)
            ]}
            for i, containers in enumerate(self.pods_cpu or [])
        ]  # fmt: skip
        return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": pods}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def watch(fake: FakeAutoscaling, polls: int) -> ClusterWatcher:
    watcher = ClusterWatcher(cluster_apis(host=fake.url), interval_s=0.01)
    with watcher:
        while len(watcher.samples) < polls and watcher.error is None:
            threading.Event().wait(0.01)
    return watcher


@pytest.mark.integration
def test_watcher_sees_a_scale_out_and_the_verdict_passes() -> None:
    fake = FakeAutoscaling([(1, 1), (1, 1), (1, 3), (3, 3)])
    try:
        watcher = watch(fake, polls=5)
    finally:
        fake.close()
    assert [s.desired for s in watcher.samples[:4]] == [1, 1, 3, 3]
    assert verdict(STATS, Objectives(), watcher.samples, watcher.error)[0].status == "PASS"


@pytest.mark.integration
def test_watcher_without_scale_out_fails_the_verdict() -> None:
    fake = FakeAutoscaling([(1, 1)])
    try:
        watcher = watch(fake, polls=4)
    finally:
        fake.close()
    assert verdict(STATS, Objectives(), watcher.samples, watcher.error)[0].status == "FAIL"


@pytest.mark.integration
def test_the_watcher_samples_the_pods_cpu_beside_the_hpa_and_gaps_do_not_stop_it() -> None:
    """One watcher for the verdict and the capacity model: each sample has the HPA's replicas
    and the agent pods' CPU from metrics-server, summed; without metrics the HPA is still read."""
    fake = FakeAutoscaling([(2, 2)], pods_cpu=[["250m", "1500000n"], ["1"]])
    try:
        watcher = watch(fake, polls=3)
        fake.pods_cpu = None  # metrics-server gone: 404s
        missed = len(watcher.missed)
        gap = watch(fake, polls=3)
    finally:
        fake.close()
    assert missed == 0 and watcher.error is None
    assert {(s.current, s.pods, s.millicores) for s in watcher.samples} == {(2, 2, 1251.5)}
    assert gap.error is None and len(gap.missed) == len(gap.samples) >= 3
    assert all(s.pods is None and s.desired == 2 for s in gap.samples)


@pytest.mark.integration
def test_api_errors_are_a_clear_error() -> None:
    fake = FakeAutoscaling([(1, 1)], status=403)
    try:
        with pytest.raises(HpaWatchError, match="cannot read HPA vaia/vaia-agent: 403 Forbidden"):
            ClusterWatcher(cluster_apis(host=fake.url)).__enter__()
    finally:
        fake.close()


@pytest.mark.integration
def test_an_unreachable_api_is_a_clear_error() -> None:
    from devstack.core.net import free_port

    with pytest.raises(HpaWatchError, match="cannot reach the Kubernetes API"):
        ClusterWatcher(cluster_apis(host=f"http://127.0.0.1:{free_port()}")).__enter__()


@pytest.mark.integration
def test_an_error_during_the_run_fails_the_criterion() -> None:
    fake = FakeAutoscaling([(1, 1)])
    watcher = ClusterWatcher(cluster_apis(host=fake.url), interval_s=0.01)
    with watcher:
        fake.status = 500
        while watcher.error is None:
            threading.Event().wait(0.01)
    fake.close()
    criterion = verdict(STATS, Objectives(), watcher.samples, watcher.error)[0]
    assert criterion.status == "FAIL" and "500" in criterion.measured

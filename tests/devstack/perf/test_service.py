import pytest

from devstack.harness.services import hello
from devstack.perf.reports import write_block
from devstack.perf.service import ServiceBench, Throughput, machine, service_block, wrk

RESULTS = [Throughput("bare", 1000, 1, 2, 3, 0), Throughput("hit", 500, 2, 3, 4, 0)]


@pytest.mark.unit
def test_only_the_measured_block_is_rewritten(tmp_path) -> None:
    start, end = "<!-- invoke bench --service: start -->", "<!-- invoke bench --service: end -->"
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# B\n\nintro\n\n{start}\nold\n{end}\n\n## Notes kept\n")
    write_block(path, "--service", service_block(ServiceBench(RESULTS, 1.23, 0.21), 5))
    text = path.read_text()
    assert "old" not in text and "intro" in text and "## Notes kept" in text
    assert "| hit | 500 | 0.50 | >= 0.5 | 2.0 | 3.0 | 4.0 | 0 |" in text
    assert "1.23 s after it starts" in text and "per cache hit: 0.210 ms" in text
    write_block(path, "--service", service_block(ServiceBench(RESULTS, None, 0.2), 5))
    text = path.read_text()
    assert text.count(start) == 1 and "after it starts" not in text  # not measured


@pytest.mark.unit
def test_the_machine_names_its_cpu() -> None:
    cores, cpu, python = machine().split(", ", 1)[0], machine(), machine().rsplit(", ", 1)[1]
    assert cores.endswith(" cores") and python.startswith("Python 3.")
    assert "unknown CPU" not in cpu and "model " in cpu  # /proc/cpuinfo's name, family, model


@pytest.mark.integration
def test_wrk_measures_a_real_server() -> None:
    with hello() as server:
        result = wrk(server.url, "/hello", "hello", connections=2, seconds=1)
    assert result.rps > 50 and result.errors == 0
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert server.ready_after < 30

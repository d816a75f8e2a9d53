import pytest

from devstack.core.net import free_port
from devstack.perf.service import (
    END_MARK,
    START_MARK,
    Throughput,
    start_server,
    write_benchmarks_md,
    wrk,
)

RESULTS = [Throughput("bare", 1000, 1, 2, 3, 0), Throughput("hit", 500, 2, 3, 4, 0)]


@pytest.mark.unit
def test_only_the_measured_block_is_rewritten(tmp_path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# B\n\nintro\n\n{START_MARK}\nold\n{END_MARK}\n\n## Notes kept\n")
    write_benchmarks_md(path, RESULTS, 1.23, 5)
    text = path.read_text()
    assert "old" not in text and "intro" in text and "## Notes kept" in text
    assert "| hit | 500 | 2.00x | 2.0 | 3.0 | 4.0 | 0 |" in text
    assert "1.23 s after it starts" in text
    write_benchmarks_md(path, RESULTS, 2.0, 5)
    assert path.read_text().count(START_MARK) == 1


@pytest.mark.integration
def test_wrk_measures_a_real_server() -> None:
    port = free_port()
    argv = [
        "-m",
        "uvicorn",
        "devstack.perf.hello:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server, ready_after = start_server(argv, port, "/docs", {})
    try:
        result = wrk(f"http://127.0.0.1:{port}", "/hello", "hello", connections=2, seconds=1)
    finally:
        server.terminate()
        server.wait(10)
    assert result.rps > 50 and result.errors == 0
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert ready_after < 30

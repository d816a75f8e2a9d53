import pytest

from devstack.core.net import free_port
from devstack.perf.reports import write_block
from devstack.perf.service import Throughput, service_block, start_server, wrk

RESULTS = [Throughput("bare", 1000, 1, 2, 3, 0), Throughput("hit", 500, 2, 3, 4, 0)]


@pytest.mark.unit
def test_only_the_measured_block_is_rewritten(tmp_path) -> None:
    start, end = "<!-- invoke bench --service: start -->", "<!-- invoke bench --service: end -->"
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# B\n\nintro\n\n{start}\nold\n{end}\n\n## Notes kept\n")
    write_block(path, "--service", service_block(RESULTS, 1.23, 5))
    text = path.read_text()
    assert "old" not in text and "intro" in text and "## Notes kept" in text
    assert "| hit | 500 | 2.00x | 2.0 | 3.0 | 4.0 | 0 |" in text
    assert "1.23 s after it starts" in text
    write_block(path, "--service", service_block(RESULTS, 2.0, 5))
    assert path.read_text().count(start) == 1


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


@pytest.mark.integration
def test_a_server_is_ended_with_every_process_it_started() -> None:
    """`invoke bench --service` measures `invoke dev`, whose uvicorn reloader runs the server in
    a process of its own: ending the server must end those too."""
    from pathlib import Path

    from devstack.perf.service import descendants, server

    code = (
        "import subprocess, sys, time, http.server, socketserver, os;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        "socketserver.TCPServer(('127.0.0.1', int(os.environ['PORT'])),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    with server(["-c", code], "/", {}) as running:
        [child] = descendants(running.pid)
        assert Path(f"/proc/{child}").exists()
    assert (
        not Path(f"/proc/{running.pid}").exists()
        or "Z" in Path(f"/proc/{running.pid}/stat").read_text().split()[2]
    )
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    )

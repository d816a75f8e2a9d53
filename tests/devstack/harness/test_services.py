"""The serving harness's processes: started until ready, stopped with every process they started,
started again on the same port, and a clear error when one never serves."""

from pathlib import Path

import httpx
import pytest

from devstack.core.errors import DevstackError
from devstack.harness.services import Service, answers, descendants, redis_server

pytestmark = pytest.mark.integration

# A server that starts a child first (as `invoke dev`'s reloader starts the server's process).
PARENT = (
    "import subprocess, sys, http.server, socketserver, os;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
    "socketserver.TCPServer(('127.0.0.1', int(os.environ['PORT'])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()"
)


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or "Z" in stat.read_text().rsplit(")", 1)[1].split()[0]


def test_a_server_is_ended_with_every_process_it_started() -> None:
    """`invoke bench --service` measures `invoke dev`, whose uvicorn reloader runs the server in
    a process of its own: ending the server must end those too."""
    with Service("parent", ["python", "-c", PARENT], answers("/")) as running:
        [child] = descendants(running.pid)
        assert not gone(child)
    assert gone(running.pid) and gone(child)


def test_a_stopped_server_starts_again_on_its_port(tmp_path) -> None:
    redis = redis_server(tmp_path)
    with redis:
        port = redis.port
        redis.kill()
        assert not redis.answering()
        redis.start()
        assert redis.port == port and redis.answering()
        with redis.paused():
            assert not redis.answering()  # the port is open, nothing answers
        assert redis.answering()


def test_a_server_that_exits_at_start_says_so_with_its_output() -> None:
    failing = Service("broken", ["python", "-c", "import sys; sys.exit('no config here')"],
                      answers("/"))  # fmt: skip
    with pytest.raises(DevstackError, match="broken exited with 1") as info:
        failing.start(timeout=30)
    assert "no config here" in (info.value.detail or "")


def test_a_server_that_never_serves_times_out_with_a_clear_error() -> None:
    silent = Service("silent", ["python", "-c", "import time; time.sleep(60)"], answers("/"))
    try:
        with pytest.raises(DevstackError, match=r"silent was not ready on http://127\.0\.0\.1"):
            silent.start(timeout=1)
    finally:
        silent.stop()
    assert not silent.running()
    with pytest.raises(httpx.HTTPError):
        httpx.get(silent.url, timeout=1)

"""Real service processes for integration tests: redis-server and a Chroma server, each on a
free loopback port, with start/stop/kill so tests can take a dependency away mid-test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devstack.core.net import free_port, port_open
from devstack.core.tools import require

__all__ = [
    "RESTRICTED",
    "ChromaProcess",
    "RedisProcess",
    "agent_environment",
    "free_port",
    "invoke_dev",
    "wait_until",
]

# `docker run` flags for a container held to what Pod Security restricted asks of a pod.
RESTRICTED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def agent_environment(**overrides: str) -> dict[str, str]:
    """This process's environment for a child agent, without a developer's keys and stores."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "REDIS_URL", "CHROMA_HOST")
    }
    return {**env, **overrides}


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r})")


class ManagedProcess:
    """A server process that can be stopped and started again on the same port."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self, timeout: float = 30) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
            )
        wait_until(self.ready, timeout, f"{self.name} on 127.0.0.1:{self.port} (log: {self.log})")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        wait_until(lambda: not port_open(self.port), 10, f"{self.name} port to close")

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port stays open and the kernel still accepts connections, but nothing
        answers (a hung server, not a dead one)."""
        assert self.proc and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Paused for the block, resumed afterwards whatever happens (the process is shared)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()


class RedisProcess(ManagedProcess):
    def __init__(self, workdir: Path) -> None:
        port = free_port()
        argv = [
            require("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ]
        super().__init__("redis-server", argv, port, workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class ChromaProcess(ManagedProcess):
    def __init__(self, workdir: Path) -> None:
        port = free_port()
        chroma = str(Path(sys.executable).with_name("chroma"))
        argv = [
            chroma,
            "run",
            "--path",
            str(workdir / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        super().__init__("chroma", argv, port, workdir / "chroma.log")

    def client_settings(self, **overrides: object) -> dict[str, object]:
        """Settings of an agent that uses this server, in a collection of its own (tests share
        the server, never a collection), plus `overrides`."""
        return {
            "chroma_host": "127.0.0.1",
            "chroma_port": self.port,
            "chroma_collection_prefix": f"t{uuid.uuid4().hex[:10]}",
            **overrides,
        }

    def ready(self) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


@contextmanager
def invoke_dev(cwd: Path, env: dict[str, str], *flags: str) -> Iterator[tuple[str, float]]:
    """`invoke dev` run for real in `cwd`, until the shipped runbooks are seeded: yields its URL
    and the seconds it took; stopped with Ctrl-C (SIGINT to its process group) as a user would."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "dev", "--port", str(port), *flags],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(base + "/ready").json()["checks"]["knowledge_seed"] == "done",
            60,
            "invoke dev",
        )
        yield base, time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

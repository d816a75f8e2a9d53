"""The servers the serving tests and the benchmarks run, each a process of its own on a free
loopback port: the agent (`python -m agent serve`, or `invoke dev` as a developer runs it),
redis-server, a Chroma server, the Gemini stand-in and a bare uvicorn. Each starts and stops the
same way (`Service`, a context manager), is ready when its own check says so (through the one
bounded wait, devstack/core/wait.py) and can be stopped, killed, paused and started again on the
same port, to take a dependency away mid-test. `in_thread` serves an ASGI app (the stand-in, an
app object a test holds) from a thread of this process instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import httpx

from devstack.core.errors import DevstackError
from devstack.core.net import free_port, port_open
from devstack.core.process import error_output, spawn
from devstack.core.runner import Runner
from devstack.core.wait import wait_until

# A developer's settings that would point a child agent at their stores and their Gemini.
DEVELOPER_SETTINGS = ("GEMINI_API_KEY", "REDIS_URL", "CHROMA_HOST")
SEEDED = ("done", "skipped: collection not empty")
POLL_S = 0.05


@dataclass
class Service:
    """A server process on 127.0.0.1:`port`. `argv` starts with a tool of the preflight
    (devstack/core/tools.py) or a program's absolute path; `{port}` in it is the port, which it
    also gets as $PORT. `ready(service)` says when it serves."""

    name: str
    argv: list[str]
    ready: Callable[[Service], bool]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    log: Path | None = None  # its whole output; else its stderr is kept for errors only
    port: int = field(default_factory=free_port)
    stop_signal: int = signal.SIGTERM  # how `stop` asks it to end by default
    process: subprocess.Popen[bytes] | None = None
    ready_after: float = 0.0  # seconds from its start until it was ready, last start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answering(self) -> bool:
        """Running and ready (not killed, stopped or paused by a test)."""
        return self.running() and self.ready(self)

    def start(self, timeout: float = 60) -> Self:
        tool, *args = [arg.replace("{port}", str(self.port)) for arg in self.argv]
        env = {**os.environ, **(self.env or {}), "PORT": str(self.port)}
        started = time.perf_counter()
        if os.path.isabs(tool):  # a program found by the caller, not a tool of the preflight
            self.process = spawn([tool, *args], env, self.cwd, self.log)
        else:
            self.process = Runner().start(tool, *args, env=env, cwd=self.cwd, log=self.log)
        try:
            wait_until(
                lambda: not self.running() or self.ready(self),
                timeout,
                lambda: DevstackError(
                    f"{self.name} was not ready on {self.url} within {timeout:.0f} s",
                    self.output(),
                ),
                POLL_S,
            )
        except BaseException:
            self.stop(signal.SIGKILL)  # nothing left behind by a start that failed
            raise
        if not self.running():
            raise DevstackError(f"{self.name} exited with {self.process.returncode}", self.output())
        self.ready_after = time.perf_counter() - started
        return self

    def stop(self, sig: int | None = None, timeout: float = 15) -> None:
        """`sig` (its `stop_signal` by default) to the process and every process it started
        (`invoke dev`'s reloader runs the server in a child), then until they are gone and the
        port is free (SIGKILL past `timeout`)."""
        sig = self.stop_signal if sig is None else sig
        process = self.process
        if process is None:
            return
        family = [process.pid, *descendants(process.pid)] if process.poll() is None else []
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for pid in family[1:]:
            if not _ended(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: not port_open(self.port),
            10,
            lambda: DevstackError(f"{self.name}'s port {self.port} is still open"),
            POLL_S,
        )

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port stays open and the kernel still accepts connections, but nothing
        answers (a hung server, not a dead one)."""
        assert self.running(), f"{self.name} is not running"
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Paused for the block, resumed afterwards whatever happens (the process is shared)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def output(self) -> str:
        """The end of what it wrote (its log, or its stderr)."""
        if self.log is not None and self.log.exists():
            return self.log.read_text(errors="replace")[-2000:]
        return error_output(self.process) if self.process is not None else ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process, all its threads (Linux /proc)."""
        return cpu_seconds(self.pid)

    def __enter__(self) -> Self:
        return self if self.running() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- readiness ----------------------------------------------------------------------------------


Ready = Callable[["Service"], bool]


def answers(path: str, check: Callable[[httpx.Response], bool] | None = None) -> Ready:
    """Ready when GET `path` answers 200 (and `check` accepts the answer)."""

    def ready(service: Service) -> bool:
        try:
            response = httpx.get(service.url + path, timeout=1)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and (check is None or check(response))

    return ready


def listening(service: Service) -> bool:
    """Ready when it accepts TCP connections."""
    return port_open(service.port)


def seeded(response: httpx.Response) -> bool:
    """The agent's /ready: the shipped runbooks are seeded (or were already)."""
    return response.json()["checks"]["knowledge_seed"] in SEEDED


# --- the servers --------------------------------------------------------------------------------


class AgentServer(Service):
    def metric(self, name: str, **labels: str) -> float | None:
        """The sum of the samples of `name` whose labels include `labels`; None when none."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        found = None
        for match in re.finditer(rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                found = (found or 0.0) + float(match.group(2))
        return found


def agent_environment(**overrides: str) -> dict[str, str]:
    """This process's environment for a child agent, without a developer's keys and stores."""
    env = {k: v for k, v in os.environ.items() if k not in DEVELOPER_SETTINGS}
    return {**env, **overrides}


def agent(
    workdir: Path,
    gemini: GeminiServer | None = None,
    agent_from: Path | None = None,
    **env: str,
) -> AgentServer:
    """The agent (`python -m agent serve`) on its defaults but an embedded store in `workdir`, no
    rate limit and warnings only; Gemini the stand-in, or offline without one; ready once the
    shipped runbooks are seeded. `agent_from`: a folder with another `agent` package to run (an
    older commit's, for before-and-after figures)."""
    port = free_port()
    settings = {
        "CHROMA_PATH": str(workdir / f"chroma-{port}"),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LLM_PROVIDER": "offline",
    }
    if gemini is not None:
        settings |= {
            "LLM_PROVIDER": "gemini",
            "GEMINI_API_KEY": gemini.api_key,
            "GOOGLE_GEMINI_BASE_URL": gemini.url,
        }
    if agent_from is not None:
        settings["PYTHONPATH"] = str(agent_from)  # `python -m` puts its cwd first on sys.path
    return AgentServer(
        "the agent",
        ["python", "-m", "agent", "serve"],
        answers("/ready", seeded),
        agent_environment(**(settings | env)),
        cwd=agent_from,
        port=port,
    )


def invoke_dev(checkout: Path, env: Mapping[str, str], *flags: str) -> AgentServer:
    """`invoke dev` in `checkout`, as a developer runs it (stopped with SIGINT, as Ctrl-C does),
    ready once the shipped runbooks are seeded."""
    return AgentServer(
        "invoke dev",
        ["python", "-m", "invoke", "dev", "--port", "{port}", *flags],
        answers("/ready", seeded),
        env,
        cwd=checkout,
        stop_signal=signal.SIGINT,
    )


class RedisServer(Service):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _redis_answers(service: Service) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=service.port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_server(workdir: Path) -> RedisServer:
    argv = ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    return RedisServer("redis-server", argv, _redis_answers, log=workdir / "redis.log")


# The `chroma` command of the chromadb package (the full one, which the dev extra installs).
CHROMA = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; sys.exit(app())"


class ChromaServer(Service):
    def client_settings(self, **overrides: object) -> dict[str, object]:
        """Settings of an agent that uses this server, in a collection of its own (agents share
        the server, never a collection), plus `overrides`."""
        return {
            "chroma_host": "127.0.0.1",
            "chroma_port": self.port,
            "chroma_collection_prefix": f"t{uuid.uuid4().hex[:10]}",
            **overrides,
        }


def chroma_server(workdir: Path) -> ChromaServer:
    argv = ["python", "-c", CHROMA, "run", "--path", str(workdir / "data"), "--host", "127.0.0.1"]
    argv += ["--port", "{port}"]
    return ChromaServer(
        "chroma",
        argv,
        answers("/api/v2/heartbeat"),
        {"ANONYMIZED_TELEMETRY": "False"},
        log=workdir / "chroma.log",
    )


class GeminiServer(Service):
    api_key = "harness-key"  # the stand-in in a process takes any key

    def control(self, **behaviour: Any) -> None:
        httpx.post(self.url + "/control", json=behaviour, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.url + "/stats", timeout=5).json()
        return stats

    def count(self, kind: str, method: str = "generateContent") -> int:
        """Calls of `method` so far: `calls` (arrived), `completed` or `abandoned`."""
        return int(self.stats()[kind].get(method, 0))

    def settle(self, timeout: float = 30) -> None:
        """Until no call is in flight."""
        wait_until(
            lambda: self.stats()["in_flight"] == 0,
            timeout,
            lambda: DevstackError("the stand-in's calls are still in flight"),
            POLL_S,
        )


def gemini_server(**behaviour: Any) -> GeminiServer:
    """The Gemini stand-in (devstack/harness/gemini.py) in a process of its own."""
    import json

    argv = ["python", "-m", "devstack.harness.gemini", "--port", "{port}"]
    return GeminiServer(
        "the Gemini stand-in",
        [*argv, "--behaviour", json.dumps(behaviour)],
        answers("/health"),
    )


# The baseline of the benchmarks: the same framework and server as the agent, doing nothing.
def hello() -> Service:
    argv = ["python", "-m", "uvicorn", "devstack.harness.hello:app", "--host", "127.0.0.1"]
    argv += ["--port", "{port}", "--no-access-log", "--log-level", "warning"]
    return Service("a bare uvicorn", argv, answers("/docs"))


# --- in this process ----------------------------------------------------------------------------


@contextlib.contextmanager
def in_thread(
    app: Any, ready_path: str = "/health", lifespan: Literal["on", "off"] = "on"
) -> Iterator[str]:
    """An ASGI app served by a real uvicorn on a free loopback port, in a thread of this process:
    real sockets and a real event loop, with the app object at hand. Yields its base URL once
    `ready_path` answers; stops the server (its lifespan included) afterwards."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: not thread.is_alive() or _get_ok(base + ready_path),
            30,
            lambda: DevstackError(f"{app!r:.60} did not answer on {base}{ready_path}"),
            POLL_S,
        )
        if not thread.is_alive():
            raise DevstackError(f"uvicorn on {base} stopped at start")
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- processes ----------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The processes started by `pid`, and by those, ... (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _ended(pid: int, timeout: float) -> bool:
    """Whether `pid` (not our child: nothing to reap) is gone, or a zombie, within `timeout`."""

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    try:
        wait_until(gone, timeout, lambda: TimeoutError(pid), POLL_S)
    except TimeoutError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

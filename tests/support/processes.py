"""Thin fixtures over the serving harness (devstack/harness/services.py): the names the tests use
for its servers, and a wait for a test's own condition through the one bounded wait."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.core import wait
from devstack.core.net import free_port
from devstack.harness import services
from devstack.harness.services import ChromaServer, RedisServer, Service, agent_environment

__all__ = [
    "RESTRICTED",
    "ChromaServer",
    "ManagedProcess",
    "RedisServer",
    "agent_environment",
    "free_port",
    "invoke_dev",
    "wait_until",
]

# `docker run` flags for a container held to what Pod Security restricted asks of a pod.
RESTRICTED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Until `check()` is true; an exception it raises counts as not yet (a server that does not
    answer yet), and the last one is in the timeout's message."""
    last: list[Exception] = []

    def done() -> bool:
        try:
            return bool(check())
        except Exception as exc:
            last[:] = [exc]
            return False

    wait.wait_until(
        done,
        timeout,
        lambda: TimeoutError(f"{what} not ready after {timeout}s (last error: {last[-1:]!r})"),
        interval=0.05,
    )


class ManagedProcess(Service):
    """A server program (an absolute path) that listens on `port`, its output in `log`."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        super().__init__(name, argv, services.listening, log=log, port=port)


@contextmanager
def invoke_dev(cwd: Path, env: dict[str, str], *flags: str) -> Iterator[tuple[str, float]]:
    """`invoke dev` run for real in `cwd`, until the shipped runbooks are seeded: yields its URL
    and the seconds it took; stopped with SIGINT, as Ctrl-C stops it."""
    with services.invoke_dev(cwd, env, *flags) as running:
        yield running.url, running.ready_after

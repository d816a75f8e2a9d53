"""A bounded wait for something to become true: the one loop behind the tasks' waits (a daemon
answering, a socket accepting, a process reaped)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    done: Callable[[], bool],
    timeout: float,
    failure: Callable[[], Exception],
    interval: float = 0.2,
) -> None:
    """Until `done()` is true; past `timeout` seconds, raises what `failure()` makes."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise failure()
        time.sleep(interval)

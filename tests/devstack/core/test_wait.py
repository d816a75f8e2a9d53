"""The bounded wait behind the tasks' waits: it returns once the condition holds, and raises the
caller's own error once the time is up (never sooner, never silently)."""

import time

import pytest

from devstack.core.errors import DevstackError
from devstack.core.wait import wait_until

pytestmark = pytest.mark.unit


def test_returns_once_the_condition_holds() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) == 3

    wait_until(third_time, 5, lambda: DevstackError("never"), interval=0.01)
    assert len(calls) == 3


def test_raises_the_callers_error_after_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(DevstackError, match="the registry does not answer"):
        wait_until(lambda: False, 0.1, lambda: DevstackError("the registry does not answer"), 0.01)
    assert time.monotonic() - started >= 0.1

"""What every task module shares: the repository root, the interpreter, the runner that echoes,
and the one error policy."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from devstack.core.console import echo_command, show_detail
from devstack.core.errors import DevstackError
from devstack.core.names import REPO
from devstack.core.runner import Runner

ROOT = REPO
PY = shlex.quote(sys.executable)
F = TypeVar("F", bound=Callable[..., Any])


def runner() -> Runner:
    """The runner of a task: every command it runs is echoed (never its stdin)."""
    return Runner(echo=echo_command)


@overload
def task(body: F, /) -> Task[F]: ...
@overload
def task(**kwargs: Any) -> Callable[[F], Task[F]]: ...
def task(*args: Any, **kwargs: Any) -> Any:
    """invoke's @task with the one error policy: a DevstackError ends the task with its message
    on one line (after its detail, if any) and its exit code. Anything else is a bug, and keeps
    its traceback."""

    def decorate(body: F) -> Task[F]:
        @functools.wraps(body)
        def run(*call_args: Any, **call_kwargs: Any) -> Any:
            try:
                return body(*call_args, **call_kwargs)
            except DevstackError as exc:
                if exc.detail:
                    show_detail(exc.detail)
                message = " ".join(str(exc).split("\n"))
                raise Exit(f"error: {message}", code=exc.exit_code) from exc

        made: Task[F] = invoke_task(**kwargs)(run)
        return made

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate

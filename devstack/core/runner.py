"""The one way devstack runs an external program.

`Runner.run("kubectl", ...)` resolves the tool once through the preflight (`tools.command`),
echoes the command line (never its stdin, which may carry a secret), bounds it with a timeout and
turns a failure into a CommandError whose detail is the tail of its output. `Runner.start` does
the same for background processes (port-forwards, servers under benchmark). Tests pass their own
`execute` and `resolve` to record what would run.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from devstack.core.errors import CommandError
from devstack.core.process import DEFAULT_TIMEOUT, Execute, Invocation, Result, execute, spawn
from devstack.core.tools import command

__all__ = ["Invocation", "Result", "Runner"]

# Global options whose value comes next (kubectl, docker compose), skipped to find the subcommand.
_OPTIONS_WITH_VALUES = frozenset({"--context", "-n", "--namespace", "-p", "--project-directory"})
_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def _subcommand(args: tuple[str, ...]) -> list[str]:
    """`apply` of `kubectl --context x apply -f -`: what names the failure."""
    skip = False
    for arg in args:
        if skip or arg.startswith("-"):
            skip = arg in _OPTIONS_WITH_VALUES
            continue
        return [arg] if _WORD.match(arg) else []
    return []


class Runner:
    def __init__(
        self,
        echo: Callable[[str], None] | None = None,
        resolve: Callable[[str], list[str]] = command,
        execute: Execute = execute,
        spawn: Callable[..., subprocess.Popen[bytes]] = spawn,
    ) -> None:
        self.echo = echo
        self._resolve = resolve
        self._execute = execute
        self._spawn = spawn
        self._commands: dict[str, list[str]] = {}

    def command(self, tool: str) -> list[str]:
        """The tool's argv prefix, resolved once through the preflight."""
        if tool not in self._commands:
            self._commands[tool] = self._resolve(tool)
        return self._commands[tool]

    def preflight(self, *tools: str) -> None:
        """Resolve every tool before anything runs: a missing one fails fast, changing nothing."""
        for tool in tools:
            self.command(tool)

    def run(
        self,
        tool: str,
        *args: str,
        check: bool = True,
        stdin: str | bytes | IO[bytes] | None = None,
        capture: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        argv = [*self.command(tool), *args]
        if self.echo is not None:
            self.echo(_shown(argv))
        result = self._execute(argv, Invocation(stdin, capture, timeout, env, cwd, on_line))
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise CommandError(
                f"{' '.join([tool, *_subcommand(args)])} failed (exit {result.returncode})"
                f"{': ' + output.splitlines()[-1] if output else ''}",
                detail=output[-4000:] or None,
            )
        return result

    def start(
        self,
        tool: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        argv = [*self.command(tool), *args]
        if self.echo is not None:
            self.echo(_shown(argv))
        return self._spawn(argv, env, cwd, log) if log else self._spawn(argv, env, cwd)


def _shown(argv: list[str]) -> str:
    """The command line as echoed: a script passed as one argument shows as <script>."""
    return "$ " + " ".join("<script>" if "\n" in arg else arg for arg in argv)

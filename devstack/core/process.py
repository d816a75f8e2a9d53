"""The only module that starts processes: `execute` runs one to completion, `spawn` starts one
in the background. Everything else goes through `Runner` (runner.py) or the preflight (tools.py).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.core.errors import CommandError, MissingToolError

DEFAULT_TIMEOUT = 900.0


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class Invocation:
    """How to run one command."""

    stdin: str | bytes | IO[bytes] | None = None
    capture: bool = True  # False: the program has the terminal (tilt up)
    timeout: float | None = DEFAULT_TIMEOUT
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    on_line: Callable[[str], None] | None = None  # stream stdout+stderr, line by line


Execute = Callable[[Sequence[str], Invocation], Result]


def execute(argv: Sequence[str], how: Invocation) -> Result:
    """Run `argv` to completion. The only place that waits on a subprocess."""
    env = dict(how.env) if how.env is not None else None
    try:
        if not how.capture:
            return Result(subprocess.run(list(argv), env=env, cwd=how.cwd, check=False).returncode)
        if how.on_line is not None:
            return _streamed(argv, how, env)
        given = how.stdin.encode() if isinstance(how.stdin, str) else how.stdin
        data = given if isinstance(given, bytes) else None
        done = subprocess.run(
            list(argv),
            input=data,
            stdin=None if isinstance(given, bytes) else given,
            capture_output=True,
            env=env,
            cwd=how.cwd,
            timeout=how.timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MissingToolError(f"{argv[0]} is gone: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{_name(argv)} did not finish within {how.timeout:.0f} s") from exc
    return Result(done.returncode, _text(done.stdout), _text(done.stderr))


def _text(output: bytes | None) -> str:
    """Bytes as text mode would read them (universal newlines), a bad byte replaced, not fatal."""
    text = (output or b"").decode(errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _streamed(argv: Sequence[str], how: Invocation, env: dict[str, str] | None) -> Result:
    assert how.on_line is not None
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=how.cwd,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        how.on_line(line)
    try:
        code = process.wait(timeout=how.timeout)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        raise CommandError(f"{_name(argv)} did not finish within {how.timeout:.0f} s") from exc
    return Result(code, "".join(lines), "")


def spawn(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in the background: its stdout discarded and its stderr kept for errors in a
    file (a pipe nobody reads while the process runs fills up, and a server that logs then
    blocks on its next write; `error_output` reads it), or both written to `log`, for a chatty
    program whose whole output is worth keeping."""
    errors = log.open("a+b") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=errors if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log is not None else errors,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        errors.close()
        raise MissingToolError(f"{argv[0]} is gone: {exc.strerror}") from exc
    process.stderr = errors  # the process owns it: closed with it
    return process


def error_output(process: subprocess.Popen[bytes], tail: int = 2000) -> str:
    """The end of what a process started by `spawn` wrote to its stderr so far."""
    if process.stderr is None:
        return ""
    if process.stderr.seekable():
        process.stderr.seek(0)  # the process wrote through the same file offset
    return process.stderr.read().decode(errors="replace")[-tail:]


def daemonize(argv: Sequence[str], log: Path) -> int:
    """Start a daemon that outlives this process (a new session, its output in `log`); its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except FileNotFoundError as exc:
        raise MissingToolError(f"{argv[0]} is gone: {exc.strerror}") from exc
    return process.pid


def _name(argv: Sequence[str]) -> str:
    words = [Path(argv[0]).name, *[a for a in argv[1:3] if not a.startswith("-")]]
    return " ".join(words)

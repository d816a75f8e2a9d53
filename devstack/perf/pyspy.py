"""py-spy, the sampling profiler, attached to a running process while a load runs: the stacks it
sampled, counted. Only threads at work are sampled (py-spy leaves out the idle ones), so the
counts are shares of the process's CPU time.

py-spy is a Python package of the dev extra: it runs from this Python's bin folder (as locust
does), through the one runner. Its raw output has one line per distinct stack: the frames,
outermost first, as `function (file:line)` joined by `;`, then a space and how many samples had
that stack.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.core.errors import CommandError, MissingToolError
from devstack.core.process import error_output
from devstack.core.runner import Runner

PY_SPY = "py-spy"
RATE_HZ = 200  # samples a second of each thread at work
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Frame:
    function: str  # qualified: `KnowledgeStore._run.<locals>.call`
    file: str  # a full path


Stack = tuple[Frame, ...]  # outermost first


@dataclass
class Samples:
    """What one recording sampled: each distinct stack and its count (filled when it ends)."""

    stacks: Counter[Stack]

    @property
    def total(self) -> int:
        return sum(self.stacks.values())


def locate() -> list[str]:
    """py-spy's argv: beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name(PY_SPY)
    found = str(beside) if beside.exists() else shutil.which(PY_SPY)
    if found is None:
        raise MissingToolError(
            'py-spy is not installed: pip install -e ".[dev]" (the dev extra has it)'
        )
    return [found]


@contextlib.contextmanager
def recording(pid: int, folder: Path, rate_hz: int = RATE_HZ) -> Iterator[Samples]:
    """Sample `pid` for the length of the block (py-spy ends on SIGINT and writes its file);
    the samples are in the yielded object once the block is over."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"py-spy-{pid}.txt"
    argv = ["record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw"]
    argv += ["--full-filenames", "--output", str(out)]
    process = Runner(resolve=lambda _: locate()).start(PY_SPY, *argv)
    samples = Samples(Counter())
    try:
        yield samples
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if not out.exists():
        raise CommandError(
            f"py-spy wrote nothing (exit {process.returncode})", detail=error_output(process)
        )
    samples.stacks.update(parse(out.read_text()))


def parse(text: str) -> Counter[Stack]:
    """py-spy's raw format, counted by stack."""
    counted: Counter[Stack] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counted[tuple(frame(part) for part in stack.split(";"))] += int(count)
    return counted


def frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if match is None:  # `thread (1234)` when threads are named, or a frame py-spy could not read
        return Frame(text, "")
    return Frame(match["function"], match["file"])

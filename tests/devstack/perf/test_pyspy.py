"""py-spy's samples: its raw format parsed (unit), and a real recording of a busy process
(integration: py-spy attaches to it)."""

import subprocess
import sys

import pytest

from devstack.perf import pyspy
from devstack.perf.pyspy import Frame


@pytest.mark.unit
def test_raw_lines_are_parsed_into_stacks_and_counts() -> None:
    text = (
        "MainThread;<module> (/x/agent/__main__.py:99);guard (/x/agent/api/deps.py:62) 3\n"
        "run (<frozen runpy>:88);KnowledgeStore._run.<locals>.call (/x/agent/store/vector.py:5) 2\n"
        "MainThread;<module> (/x/agent/__main__.py:99);guard (/x/agent/api/deps.py:70) 1\n"
        "not a sample\n"
    )
    stacks = pyspy.parse(text)
    assert sum(stacks.values()) == 6
    guard = (
        Frame("MainThread", ""),
        Frame("<module>", "/x/agent/__main__.py"),
        Frame("guard", "/x/agent/api/deps.py"),
    )
    assert stacks[guard] == 4  # the same frames on other lines are the same stack
    [thread] = [stack for stack in stacks if stack != guard]
    assert thread[-1] == Frame("KnowledgeStore._run.<locals>.call", "/x/agent/store/vector.py")
    assert thread[0] == Frame("run", "<frozen runpy>")


@pytest.mark.integration
def test_a_recording_samples_a_busy_process(tmp_path) -> None:
    busy = "def spin():\n    while True: sum(range(1000))\nspin()\n"
    process = subprocess.Popen([sys.executable, "-c", busy])
    try:
        with pyspy.recording(process.pid, tmp_path, rate_hz=100) as samples:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(1)"], check=True)
    finally:
        process.kill()
        process.wait()
    assert samples.total > 10
    assert any(frame.function == "spin" for stack in samples.stacks for frame in stack)

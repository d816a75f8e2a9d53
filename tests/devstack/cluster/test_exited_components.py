"""Which of kwokctl's components have exited, read from its pid files and /proc: a process that
exited but is not reaped yet (a zombie) counts as exited, where kwokctl's signal-0 check calls it
running."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from devstack.cluster.local import LocalPaths, exited_components

pytestmark = pytest.mark.unit


def _paths(tmp_path: Path, monkeypatch, **pids: int) -> LocalPaths:
    monkeypatch.setenv("KWOK_WORKDIR", str(tmp_path / "kwok"))
    paths = LocalPaths(tmp_path / "engine")
    (paths.workdir / "pids").mkdir(parents=True)
    for name, pid in pids.items():
        (paths.workdir / "pids" / f"{name}.pid").write_text(str(pid))
    return paths


def test_a_zombie_and_a_gone_process_have_exited_a_live_one_has_not(tmp_path, monkeypatch) -> None:
    zombie = subprocess.Popen(["true"])  # not waited for: a zombie once it exits
    live = subprocess.Popen(["sleep", "30"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(zombie.pid, 0)  # what kwokctl asks: a zombie answers
        paths = _paths(
            tmp_path, monkeypatch, kubelet=zombie.pid, containerd=live.pid, etcd=gone.pid
        )
        assert exited_components(paths) == {"etcd": gone.pid, "kubelet": zombie.pid}
    finally:
        live.kill()
        live.wait()
        zombie.wait()

"""`tilt up` and `tilt down` on the local cluster, with the kube context named."""

from __future__ import annotations

from pathlib import Path

from devstack.core.names import CONTEXT
from devstack.core.runner import Runner


def tilt_up(runner: Runner, root: Path) -> None:
    """Tilt in the foreground (its terminal UI), until the user stops it."""
    runner.run(
        "tilt", "up", "--file", str(root / "Tiltfile"), "--context", CONTEXT,
        capture=False, timeout=None,
    )  # fmt: skip


def tilt_down(runner: Runner, root: Path) -> None:
    runner.run("tilt", "down", "--file", str(root / "Tiltfile"), "--context", CONTEXT, check=False)

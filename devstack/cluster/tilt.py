"""`tilt up`, `tilt ci` and `tilt down` on the local cluster, with the kube context named."""

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


def tilt_ci(runner: Runner, root: Path, timeout: str = "20m") -> None:
    """`tilt ci`: every auto-started resource up and ready, then exit (0), or fail (non-zero)
    when one does not come up in time. Tilt's recommended way to run a Tiltfile in CI."""
    runner.run(
        "tilt", "ci", "--file", str(root / "Tiltfile"), "--context", CONTEXT,
        "--timeout", timeout, capture=False, timeout=None,
    )  # fmt: skip


def tilt_down(runner: Runner, root: Path) -> None:
    runner.run("tilt", "down", "--file", str(root / "Tiltfile"), "--context", CONTEXT, check=False)

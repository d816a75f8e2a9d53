"""`tilt up`, `tilt ci` and `tilt down` on the local cluster, with the kube context named.

Tilt runs kubectl itself (`kustomize()`, the Tiltfile's `local()` checks), so the kubectl that
devstack resolved (the pinned build, when there is one) goes first on Tilt's PATH."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devstack.core.names import CONTEXT
from devstack.core.runner import Runner
from devstack.image.build import base_build_args, pip_ca_file
from devstack.image.docker import Docker


def tilt_build_env(docker: Docker, offline: bool) -> dict[str, str]:
    """What the Tiltfile's docker_build takes from the environment: the stand-in base where no
    registry can be reached, and pip's CA (a BuildKit secret, as `invoke build` passes it)."""
    env = {}
    if offline:
        env["VAIA_BUILDER_IMAGE"] = base_build_args(docker, offline=True)["BUILDER_IMAGE"]
    ca = pip_ca_file()
    if ca is not None:
        env["VAIA_PIP_CA"] = str(ca)
    return env


def tilt_env(runner: Runner, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    kubectl = Path(runner.command("kubectl")[0]).parent
    path = os.pathsep.join([str(kubectl), os.environ.get("PATH", "")])
    return {**os.environ, **(extra or {}), "PATH": path}


def tilt_up(
    runner: Runner, root: Path, context: str = CONTEXT, extra_env: Mapping[str, str] | None = None
) -> None:
    """Tilt in the foreground (its terminal UI), until the user stops it."""
    runner.run(
        "tilt", "up", "--file", str(root / "Tiltfile"), "--context", context,
        capture=False, timeout=None, env=tilt_env(runner, extra_env),
    )  # fmt: skip


def tilt_ci(
    runner: Runner,
    root: Path,
    context: str = CONTEXT,
    timeout: str = "20m",
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """`tilt ci`: every auto-started resource up and ready, then exit (0), or fail (non-zero)
    when one does not come up in time. Tilt's recommended way to run a Tiltfile in CI."""
    runner.run(
        "tilt", "ci", "--file", str(root / "Tiltfile"), "--context", context,
        "--timeout", timeout, capture=False, timeout=None, env=tilt_env(runner, extra_env),
    )  # fmt: skip


def tilt_down(runner: Runner, root: Path, context: str = CONTEXT) -> None:
    runner.run(
        "tilt", "down", "--file", str(root / "Tiltfile"), "--context", context,
        check=False, env=tilt_env(runner),
    )  # fmt: skip

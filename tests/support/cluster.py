"""The cluster tier's helpers: invoke and kubectl run for real against the kind cluster
(`invoke cluster.up`), the way a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack.cluster.nodeimage import NODE_IMAGE
from devstack.core.checkout import copy_checkout
from devstack.core.names import CONTEXT, NAMESPACE
from devstack.core.tools import require

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str, cwd: Path = ROOT, timeout: float = 1200, check: bool = True) -> str:
    """`invoke ARGS` as a user types it; its output (stdout and stderr together)."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        raise AssertionError(
            f"invoke {' '.join(args)} failed ({done.returncode}):\n{output[-6000:]}"
        )
    if not check:
        return f"exit {done.returncode}\n{output}"
    return output


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [require("kubectl"), "--context", CONTEXT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr[-3000:]}")
    return done


def get(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def fresh_namespace() -> None:
    """No `vaia` namespace: each test starts from the cluster an empty `tilt up` or a first
    deploy meets."""
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)


def checkout_copy(target: Path) -> Path:
    return copy_checkout(ROOT, target)


# `invoke up` as this machine runs it: inner-loop.yml's command with only these added (nothing can
# be pulled here; the node image is built here).
UP = ("up", "--ci", "--offline", "--node-image", NODE_IMAGE)

"""`invoke setup`: what the machine needs before the whole suite can pass, provided, idempotently.

Debian packages through apt when run as root (one line naming them otherwise), the Docker daemon
started (with the runtime wrapper where the host cannot grant a capability privileged containers
ask for: devstack/host/privileged.py), checkov in a virtualenv of its own, the pinned programs
built from source into the cache (devstack/cluster/binaries.py), kubectl at the pinned Kubernetes
version among them, and Trivy's database from the advisory records when there are some. Above
every layer it uses; the check it ends with is the preflight's (devstack/core/preflight.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from devstack.cluster.binaries import build_all
from devstack.core.errors import DevstackError, MissingToolError
from devstack.core.names import REPO
from devstack.core.preflight import TIERS, missing_tools
from devstack.core.process import daemonize
from devstack.core.runner import Runner
from devstack.core.tools import TOOLS, inspect
from devstack.core.wait import wait_until
from devstack.host import privileged
from devstack.image.docker import Docker
from devstack.release import vulndb

Log = Callable[[str], None]

# The Debian package that gives each tool apt can install.
APT_PACKAGES = {
    "redis-server": "redis-server",
    "docker": "docker.io",
    "debootstrap": "debootstrap",
    "wrk": "wrk",
    "docker-registry": "docker-registry",
    "chromium": "chromium",
    "git": "git",
    "runc": "runc",
    "busybox": "busybox-static",
    "cc": "gcc",
}
CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = REPO / ".venv-checkov"


# --- invoke setup ---------------------------------------------------------------------------


def is_root() -> bool:
    return os.geteuid() == 0


def install_packages(runner: Runner, log: Log, root: bool | None = None) -> list[str]:
    """The Debian packages of the tools that are missing, through apt (as root)."""
    packages = sorted({APT_PACKAGES[t] for t in APT_PACKAGES if not inspect(t).ok})
    if not packages:
        log("system packages: all there")
        return []
    command = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if not (is_root() if root is None else root):
        raise MissingToolError(f"system packages missing: run as root: {command}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    runner.run("apt-get", "update", "-qq", env=env, timeout=1800)
    runner.run("apt-get", "install", "-y", "-qq", *packages, env=env, timeout=3600)
    log(f"installed: {' '.join(packages)}")
    return packages


def start_docker(runner: Runner, log: Log, wait_seconds: float = 60) -> None:
    """The Docker daemon answering; started in the background (as root) when it is not."""
    client = Docker(runner)
    try:
        client.daemon_ready()
        log("docker daemon: answering")
        return
    except MissingToolError:
        if not is_root():
            raise
    log("docker daemon: starting dockerd")
    daemonize(["dockerd"], Path("/var/log/dockerd-vaia.log"))

    def answers() -> bool:
        try:
            client.daemon_ready()
        except MissingToolError:
            return False
        return True

    wait_until(
        answers,
        wait_seconds,
        lambda: MissingToolError(
            f"dockerd did not answer within {wait_seconds:.0f} s: see /var/log/dockerd-vaia.log"
        ),
        interval=1,
    )


def install_checkov(runner: Runner, log: Log, venv: Path = CHECKOV_VENV) -> None:
    """checkov in a virtualenv of its own: it pins packaging<24, which pytest 9 cannot use."""
    if inspect("checkov").ok:
        log("checkov: there")
        return
    runner.run("python", "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    done = Runner(echo=runner.echo, resolve=lambda _: [pip])
    done.run("pip", "install", "-q", f"checkov=={CHECKOV_VERSION}", timeout=1800)
    log(f"checkov {CHECKOV_VERSION}: installed in {venv}")


def vulnerability_database(runner: Runner, log: Log) -> None:
    """Trivy's database for `invoke scan --offline`, built from the advisory records when there
    are some (rebuilt once a day: the gate refuses a stale one in CI)."""
    source = vulndb.default_advisories_dir()
    if not source.is_dir():
        log(f"vulnerability database: no advisory records at {source} (invoke vulndb --help)")
        return
    try:
        age = vulndb.describe(vulndb.default_cache_dir()).age_days(datetime.now(UTC))
    except vulndb.VulnDbError:
        age = None
    if age is not None and age < 1:
        log("vulnerability database: built today")
        return
    summary = vulndb.build(source, vulndb.default_cache_dir(), runner, log)
    log(f"vulnerability database: {summary.advisories} advisories, newest {summary.newest}")


def setup(runner: Runner, log: Log) -> None:
    install_packages(runner, log)
    start_docker(runner, log)
    if is_root():  # kind's privileged nodes, on a host that cannot grant every capability
        privileged.adapt(runner, log)
    install_checkov(runner, log)
    if not inspect("go").ok:
        raise MissingToolError(TOOLS["go"].install)
    for built in build_all(runner, log):
        state = "cached" if built.cached else f"built in {built.seconds:.0f} s"
        log(f"{built.program.name} v{built.program.version}: {state}")
    vulnerability_database(runner, log)
    still = missing_tools(TIERS)
    for item in still:
        log(item.line())
    if still:
        raise DevstackError(f"{len(still)} tool(s) still missing after setup (listed above)")
    log(f"ready: every tier's tools are here ({sys.executable})")

"""Privileged containers on a host whose capability bounding set lacks one Docker asks for.

kind's nodes are privileged containers. Docker before 23 gives them every capability it knows;
where this host's bounding set lacks one (this sandbox: CAP_SYS_RESOURCE), runc refuses with
`unable to apply caps: operation not permitted`. `invoke setup` then installs the runtime
wrapper (devstack/host/runc_wrapper.py, which leaves out what cannot be granted, as Docker 23+
does) and makes it dockerd's default runtime through /etc/docker/daemon.json (`runtimes`,
`default-runtime`, which dockerd reloads on SIGHUP). On any other host nothing changes, and it
says so. `invoke doctor` prints `state().line()`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.core.errors import DevstackError, MissingToolError
from devstack.core.runner import Runner
from devstack.core.wait import wait_until
from devstack.host import runc_wrapper

Log = Callable[[str], None]

RUNTIME = "vaia-runc"  # the name dockerd knows the wrapper by
WRAPPER = Path("/usr/local/lib/vaia-devstack/runc-wrapper")
DAEMON_JSON = Path("/etc/docker/daemon.json")
FIXED_IN = (23,)  # Docker 23 limits a privileged container to the daemon's own capabilities


class HostSetupError(DevstackError):
    """The host adaptation could not be made."""


def held_capabilities(status: str | None = None) -> set[str]:
    """This process's bounding set (every process of the machine inherits at most that)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    return runc_wrapper.bounding_set(text)


def kernel_capabilities(last_cap: int | None = None) -> set[str]:
    """The capabilities the running kernel has: what Docker's privileged mode asks for."""
    if last_cap is None:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    names = runc_wrapper.CAPABILITIES[: last_cap + 1]
    return {f"CAP_{name}" for name in names}


def missing_capabilities(held: set[str] | None = None, kernel: set[str] | None = None) -> list[str]:
    held = held_capabilities() if held is None else held
    kernel = kernel_capabilities() if kernel is None else kernel
    return sorted(kernel - held)


def docker_version(runner: Runner) -> tuple[int, ...] | None:
    done = runner.run("docker", "version", "--format", "{{.Server.Version}}", check=False)
    match = re.match(r"(\d+)\.(\d+)", done.stdout.strip())
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class HostState:
    missing: list[str]  # capabilities the kernel has and this host's bounding set lacks
    docker: tuple[int, ...] | None  # the daemon's version, None when it does not answer
    runtime: str | None  # dockerd's default runtime

    @property
    def needs_wrapper(self) -> bool:
        return bool(self.missing) and self.docker is not None and self.docker < FIXED_IN

    @property
    def configured(self) -> bool:
        return self.runtime == RUNTIME and WRAPPER.is_file()

    def line(self) -> str:
        if not self.missing:
            return "privileged containers: this host grants every capability (nothing to adapt)"
        lacking = ", ".join(self.missing)
        if self.docker is None:
            return f"privileged containers: this host lacks {lacking}; dockerd does not answer"
        if not self.needs_wrapper:
            return (
                f"privileged containers: this host lacks {lacking}; Docker "
                f"{'.'.join(map(str, self.docker))} asks only for its own (nothing to adapt)"
            )
        if self.configured:
            return (
                f"privileged containers: this host lacks {lacking}; dockerd runs containers "
                f"through {WRAPPER} (default runtime {RUNTIME}), which leaves it out"
            )
        return (
            f"privileged containers: this host lacks {lacking} and Docker "
            f"{'.'.join(map(str, self.docker))} asks for it: `invoke setup` (as root) installs "
            "the runtime wrapper kind's nodes need"
        )


def state(runner: Runner) -> HostState:
    version = docker_version(runner)
    runtime = None
    if version is not None:
        done = runner.run("docker", "info", "--format", "{{.DefaultRuntime}}", check=False)
        runtime = done.stdout.strip() or None
    return HostState(missing_capabilities(), version, runtime)


def wrapper_source(runc: str, python: str) -> str:
    """The wrapper as installed: the system's python3 and the host's runc written in."""
    source = Path(runc_wrapper.__file__).read_text()
    source = re.sub(r'^RUNC = ".*?"', f"RUNC = {json.dumps(runc)}", source, count=1, flags=re.M)
    return f"#!{python} -I\n{source}"


def daemon_config(current: dict[str, object]) -> dict[str, object]:
    """daemon.json with the wrapper as a runtime and the default one; every other key kept."""
    runtimes = dict(current.get("runtimes") or {})  # type: ignore[call-overload]
    runtimes[RUNTIME] = {"path": str(WRAPPER)}
    return {**current, "runtimes": runtimes, "default-runtime": RUNTIME}


def reload_dockerd(pidfile: Path = Path("/var/run/docker.pid")) -> None:
    """SIGHUP: dockerd reloads daemon.json's reloadable keys, `runtimes` and
    `default-runtime` among them, without stopping a container."""
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise HostSetupError(
            f"could not signal dockerd through {pidfile} ({exc}): restart it to load {DAEMON_JSON}"
        ) from exc


def adapt(runner: Runner, log: Log) -> HostState:
    """Install and enable the wrapper where the host needs it; one line either way."""
    current = state(runner)
    if not current.needs_wrapper or current.configured:
        log(current.line())
        return current
    runc = shutil.which("runc", path="/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if runc is None or python is None:
        raise MissingToolError(
            "the runtime wrapper needs runc and the system's python3: apt-get install -y runc "
            "python3"
        )
    WRAPPER.parent.mkdir(parents=True, exist_ok=True)
    WRAPPER.write_text(wrapper_source(runc, python))
    WRAPPER.chmod(0o755)
    try:
        config = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    except json.JSONDecodeError as exc:
        raise HostSetupError(f"{DAEMON_JSON} is not JSON ({exc}): fix it, then run again") from exc
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_JSON.write_text(json.dumps(daemon_config(config), indent=2) + "\n")
    reload_dockerd()

    def enabled() -> bool:
        return state(runner).runtime == RUNTIME

    wait_until(
        enabled,
        30,
        lambda: HostSetupError(f"dockerd did not take {RUNTIME} as its default runtime"),
        interval=0.5,
    )
    adapted = state(runner)
    log(adapted.line())
    return adapted

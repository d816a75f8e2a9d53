"""An OCI runtime in front of runc that leaves out the capabilities this host cannot grant.

Docker before 23 gives a `--privileged` container every capability it knows, whether or not its
own bounding set has it; on a host whose bounding set lacks one (here CAP_SYS_RESOURCE), runc
then fails with `unable to apply caps: operation not permitted`, and kind's nodes, which are
privileged containers, cannot start. Docker 23 asks only for the daemon's own capabilities
(moby#42933). This wrapper does that for older Dockers: registered with dockerd as its default
runtime (devstack/host/privileged.py), it removes every capability outside its own bounding set
from the bundle's config.json (`create`, `run`: `--bundle`, else the working directory) or the
process file (`exec`: `--process`), then runs runc with the same arguments. Nothing else changes.

Standard library only: dockerd runs it with the system's python3, outside any virtualenv.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

RUNC = "/usr/sbin/runc"  # the installer writes the host's runc here
# Linux capability numbers (include/uapi/linux/capability.h).
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
# runc's global options that take a value (the subcommand comes after them).
_GLOBAL_VALUES = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def bounding_set(status: str) -> set[str]:
    """The capability names in `CapBnd` of a /proc/<pid>/status text."""
    line = next(line for line in status.splitlines() if line.startswith("CapBnd:"))
    mask = int(line.split()[1], 16)
    return {f"CAP_{name}" for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1}


def unavailable(known: Iterable[str], held: set[str]) -> set[str]:
    """The known capabilities this host cannot grant (names it does not know are kept)."""
    names = {f"CAP_{name}" for name in CAPABILITIES}
    return {cap for cap in known if cap in names and cap not in held}


def strip(capabilities: dict[str, list[str]], held: set[str]) -> bool:
    """Remove what cannot be granted from every set, in place; whether anything was."""
    changed = False
    for kind, names in capabilities.items():
        if not isinstance(names, list):
            continue
        kept = [name for name in names if name not in unavailable(names, held)]
        if kept != names:
            capabilities[kind] = kept
            changed = True
    return changed


def option(args: Sequence[str], *names: str) -> str | None:
    """The value of the first of `names` in `args` (`--x V`, `--x=V`, `-x V`)."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def subcommand(args: Sequence[str]) -> int | None:
    """The index of runc's subcommand: the first word that is no global option or its value."""
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return index
        index += 2 if arg in _GLOBAL_VALUES else 1
    return None


def spec_file(args: Sequence[str], cwd: str) -> tuple[str, bool] | None:
    """The file to fix for this call and whether it is a whole bundle spec (else a process)."""
    at = subcommand(args)
    if at is None:
        return None
    command, rest = args[at], args[at + 1 :]
    if command in ("create", "run"):
        bundle = option(rest, "--bundle", "-b") or cwd
        return os.path.join(bundle, "config.json"), True
    if command == "exec":
        process = option(rest, "--process", "-p")
        return (process, False) if process else None
    return None


def fix(path: str, whole_spec: bool, held: set[str]) -> bool:
    with open(path) as file:
        document = json.load(file)
    process = document.get("process", {}) if whole_spec else document
    capabilities = process.get("capabilities")
    if not isinstance(capabilities, dict) or not strip(capabilities, held):
        return False
    with open(path, "w") as file:
        json.dump(document, file)
    return True


def main(argv: Sequence[str]) -> None:
    args = list(argv[1:])
    target = spec_file(args, os.getcwd())
    if target is not None and os.path.exists(target[0]):
        with open("/proc/self/status") as status:
            fix(target[0], target[1], bounding_set(status.read()))
    os.execv(RUNC, [RUNC, *args])  # noqa: S606 - runc, with the arguments it was called with


if __name__ == "__main__":
    main(sys.argv)

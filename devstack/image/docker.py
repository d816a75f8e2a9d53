"""The one place that calls docker, with a preflight that finds a client able to use BuildKit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devstack.tools import MissingToolError, parse_version

BUILDKIT_HINT = (
    "docker with BuildKit is needed: a client with the buildx plugin (docker-buildx-plugin), or "
    "Debian's docker.io client (/usr/bin/docker), and a running daemon (dockerd)"
)


class DockerError(RuntimeError):
    """A docker command failed; the message carries its output."""


def _supports_buildkit(binary: str) -> bool:
    """True if `docker build` with DOCKER_BUILDKIT=1 works: buildx present, or a pre-23 client
    whose BuildKit is built in (newer clients need buildx for it)."""
    probe = subprocess.run(
        [binary, "buildx", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return True
    version = subprocess.run(
        [binary, "version", "--format", "{{.Client.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    parsed = parse_version(version.stdout)
    return parsed is not None and parsed < (23,)


def find_docker() -> str:
    """The docker client to use: $VAIA_DOCKER, else the first BuildKit-capable one found."""
    candidates = [os.environ.get("VAIA_DOCKER"), shutil.which("docker"), "/usr/bin/docker"]
    found = [c for c in dict.fromkeys(candidates) if c and Path(c).exists()]
    if not found:
        raise MissingToolError(f"docker not found: {BUILDKIT_HINT}")
    for binary in found:
        if _supports_buildkit(binary):
            return binary
    raise MissingToolError(
        f"no docker client here can build with BuildKit ({', '.join(found)}): {BUILDKIT_HINT}"
    )


@dataclass(frozen=True)
class BuildResult:
    tags: list[str]
    image_id: str
    size_bytes: int
    log: str


class Docker:
    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or find_docker()
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        stdin: IO[bytes] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=stdin,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            command = " ".join(args[:3])
            raise DockerError(
                f"docker {command} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result

    def daemon_ready(self) -> None:
        info = self.run(["info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
        if info.returncode != 0:
            raise MissingToolError(
                f"the docker daemon is not reachable ({info.stderr.strip()[:200]}): {BUILDKIT_HINT}"
            )

    def build(
        self,
        context: Path,
        *,
        tags: Iterable[str],
        target: str | None = None,
        build_args: dict[str, str] | None = None,
        secrets: dict[str, Path] | None = None,
        dockerfile: Path | None = None,
        echo: IO[str] | None = None,
        no_cache: bool = False,
    ) -> BuildResult:
        """`docker build --progress=plain`, streaming the log to `echo` and keeping it for tests."""
        tags = list(tags)
        args = ["build", "--progress=plain", *(["--no-cache"] if no_cache else [])]
        for tag in tags:
            args += ["--tag", tag]
        if target:
            args += ["--target", target]
        if dockerfile:
            args += ["--file", str(dockerfile)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        for secret_id, path in (secrets or {}).items():
            args += ["--secret", f"id={secret_id},src={path}"]
        args.append(str(context))
        process = subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if echo is not None:
                echo.write(line)
        log = "".join(lines)
        if process.wait() != 0:
            raise DockerError(f"docker build failed:\n{log[-6000:]}")
        image = self.inspect(tags[0])
        return BuildResult(tags, image["Id"], int(image["Size"]), log)

    def inspect(self, image: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.run(["image", "inspect", image]).stdout)
        return data[0]

    def inspect_container(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.run(["container", "inspect", name]).stdout)
        return data[0]

    def image_exists(self, image: str) -> bool:
        return self.run(["image", "inspect", image], check=False).returncode == 0

    def layer_sizes(self, image: str) -> list[tuple[int, str]]:
        """(bytes, instruction) per layer, newest first, as `docker history` reports them."""
        out = self.run(["history", "--no-trunc", "--format", "{{json .}}", image]).stdout
        layers = []
        for line in out.splitlines():
            entry = json.loads(line)
            layers.append((_parse_size(entry.get("Size", "0B")), entry.get("CreatedBy", "")))
        return layers

    def import_tar(self, tar_stream: IO[bytes], tag: str, changes: Iterable[str]) -> None:
        args = ["import"]
        for change in changes:
            args += ["--change", change]
        self.run([*args, "-", tag], stdin=tar_stream)


_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def _parse_size(text: str) -> int:
    for unit in ("kB", "KB", "MB", "GB", "B"):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    return 0

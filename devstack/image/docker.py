"""docker through the runner: builds streamed with BuildKit, images inspected, layers measured."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devstack.core.errors import CommandError, MissingToolError
from devstack.core.runner import Result, Runner
from devstack.core.tools import BUILDKIT_HINT


@dataclass(frozen=True)
class BuildResult:
    tags: list[str]
    image_id: str
    size_bytes: int
    log: str


class Docker:
    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or Runner()
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        self.runner.preflight("docker")

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        stdin: str | bytes | IO[bytes] | None = None,
        timeout: float | None = 900,
    ) -> Result:
        return self.runner.run(
            "docker", *args, check=check, stdin=stdin, timeout=timeout, env=self.env
        )

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
        labels: dict[str, str] | None = None,
    ) -> BuildResult:
        """`docker build --progress=plain`, streaming the log to `echo` and keeping it."""
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
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        args.append(str(context))

        def show(line: str) -> None:  # streamed either way: a build's log can be long
            if echo is not None:
                echo.write(line)

        done = self.runner.run(
            "docker",
            *args,
            check=False,
            env=self.env,
            timeout=1800,
            on_line=show,
        )
        if done.returncode != 0:
            last = [line for line in done.stdout.splitlines() if line.strip()][-1:]
            raise CommandError(
                f"docker build failed{': ' + last[0] if last else ''}", detail=done.stdout[-6000:]
            )
        image = self.inspect(tags[0])
        return BuildResult(tags, image["Id"], int(image["Size"]), done.stdout)

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

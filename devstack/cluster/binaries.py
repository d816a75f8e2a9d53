"""The Go build of the pinned programs (devstack/core/catalogue.py), from source through the Go
module proxy, into the cache outside the repository; kind's node image is built from them
(nodeimage.py).

`go install module/cmd@version` refuses a module whose go.mod has `replace` lines (Kubernetes
points its staging modules at ./staging/src/..., etcd its siblings at ../api and so on), so each
program is built from a small wrapper module that requires it at its version and keeps its
`replace` lines, with every local one turned into the matching release of that module
(k8s.io/api => k8s.io/api v0.32.2 for Kubernetes v1.32.2). Then `go mod tidy` and one `go build`
per binary, with the version stamped the way each project's own release does it. The wrapper
starts from the project's own go.sum, so that every module is checked against the checksums the
project recorded.

A program's folder is complete or absent: binaries are built into a scratch folder that is
renamed into place, so an interrupted build is rebuilt, never half-used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core.catalogue import PROGRAMS, GoProgram
from devstack.core.errors import CommandError
from devstack.core.runner import Runner

Log = Callable[[str], None]


def tilt_web_assets(source: Path, runner: Runner, log: Log) -> None:
    """Tilt's web UI, as its Makefile's `build-js` makes it for a release: the React app built
    with the yarn the project vendors (web/.yarn/releases), then copied where Tilt embeds it
    (pkg/assets/build). Without it a release-versioned Tilt refuses to start its web server."""
    web = source / "web"
    [yarn] = sorted((web / ".yarn" / "releases").glob("yarn-*.cjs"))
    env = {
        **os.environ,
        "YARN_NPM_REGISTRY_SERVER": os.environ.get(
            "YARN_NPM_REGISTRY_SERVER", "https://registry.npmjs.org"
        ),
        "YARN_ENABLE_TELEMETRY": "0",
        "CI": "true",
    }
    log("tilt: its web UI (yarn install, yarn build)")
    runner.run("node", str(yarn), "install", "--immutable", cwd=web, env=env, timeout=1800)
    runner.run("node", str(yarn), "build", cwd=web, env=env, timeout=1800)
    assets = source / "pkg" / "assets" / "build"
    _copy_writable(web / "build", assets)


PREPARE_STEPS: dict[str, Callable[[Path, Runner, Log], None]] = {"tilt_web_assets": tilt_web_assets}


# --- the wrapper module -------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^(require|replace)\s*\($")
_GO = re.compile(r"^go\s+(\S+)")


@dataclass
class GoMod:
    go: str = "1.22"
    requires: dict[str, str] = field(default_factory=dict)
    replaces: list[tuple[str, str]] = field(default_factory=list)  # "old [v]", "new [v]"


def parse_go_mod(text: str) -> GoMod:
    """The `go`, `require` and `replace` directives of a go.mod, single-line and block forms."""
    mod = GoMod()
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            _directive(mod, block, line)
            continue
        if opened := _DIRECTIVE.match(line):
            block = opened.group(1)
        elif go := _GO.match(line):
            mod.go = go.group(1)
        elif line.startswith(("require ", "replace ")):
            verb, _, rest = line.partition(" ")
            _directive(mod, verb, rest.strip())
    return mod


def _directive(mod: GoMod, verb: str, line: str) -> None:
    if verb == "require":
        module, version = line.split()[:2]
        mod.requires[module] = version
    else:
        old, _, new = line.partition("=>")
        mod.replaces.append((old.strip(), new.strip()))


def wrapper_go_mod(program: GoProgram, upstream: GoMod, prepared: str | None = None) -> str:
    """go.mod of the wrapper: the program's module required at its version, its replace lines
    kept, local ones pointed at the matching release; the module itself replaced by the
    `prepared` copy of its source, when there is one."""
    lines = [
        f"module vaia.local/build/{program.name}",
        "",
        f"go {upstream.go}",
        "",
        f"require {program.module} v{program.version}",
    ]
    replaces = []
    for old, new in upstream.replaces:
        module = old.split()[0]
        if new.startswith(("./", "../")):
            if new.endswith("FORBIDDEN_DEPENDENCY"):
                continue  # etcd's guard against importing its root module: a path, not a module
            version = upstream.requires.get(module, "v0.0.0")
            if version == "v0.0.0":
                if program.local_version is None:
                    raise CommandError(
                        f"{program.module} v{program.version} replaces {module} locally and "
                        "requires it at v0.0.0: its release version is not known"
                    )
                version = f"v{program.local_version}"
            replaces.append(f"\t{module} => {module} {version}")
        else:
            replaces.append(f"\t{old} => {new}")
    for module, version in program.substitutes:
        replaces.append(f"\t{module} => {module} v{version}")
    if prepared is not None:
        replaces.append(f"\t{program.module} => {prepared}")
    if replaces:
        lines += ["", "replace (", *replaces, ")"]
    return "\n".join(lines) + "\n"


def tools_go(program: GoProgram) -> str:
    """Blank imports of the commands, so that `go mod tidy` resolves what they need."""
    imports = "\n".join(f'\t_ "{package}"' for package in sorted(set(program.commands.values())))
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


# --- building ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    program: GoProgram
    seconds: float
    cached: bool  # already in the cache: nothing was built


def build(program: GoProgram, runner: Runner, log: Log) -> Built:
    """The program's binaries in its cache folder (built when missing)."""
    if program.built:
        return Built(program, 0.0, cached=True)
    started = time.monotonic()
    program.folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"build-{program.name}-") as tmp:
        work = Path(tmp)
        log(f"{program.name} v{program.version}: the wrapper module")
        upstream, source = _upstream(program, runner, work)
        prepared = None
        if program.prepare is not None:
            _copy_writable(source, work / "source")
            PREPARE_STEPS[program.prepare](work / "source", runner, log)
            prepared = "./source"
        (work / "go.mod").write_text(wrapper_go_mod(program, upstream, prepared))
        (work / "tools.go").write_text(tools_go(program))
        (work / "go.sum").write_text(project_checksums(program, source))
        runner.run("go", "mod", "tidy", cwd=work, env=_go_env(program), timeout=1800)
        scratch = program.folder.with_name(program.folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        for binary, package in program.commands.items():
            log(f"{program.name} v{program.version}: go build {binary}")
            runner.run(
                "go",
                "build",
                "-trimpath",
                *(["-tags", ",".join(program.tags)] if program.tags else []),
                "-ldflags",
                " ".join(("-s", "-w", *program.ldflags)),
                "-o",
                str(scratch / binary),
                package,
                cwd=work,
                env=_go_env(program),
                timeout=3600,
            )
        for relative in program.keep:
            _copy_writable(source / relative, scratch / "source" / relative)
        shutil.rmtree(program.folder, ignore_errors=True)
        scratch.rename(program.folder)
    for stale in program.folder.parent.glob(f"{program.name}-v*"):
        if stale != program.folder and not stale.name.endswith(".partial"):
            shutil.rmtree(stale, ignore_errors=True)  # another version or recipe of it
    return Built(program, time.monotonic() - started, cached=False)


def _copy_writable(source: Path, target: Path) -> None:
    """Copy a file or a tree without its modes: the module cache's files and folders are
    read-only, and the cache folder must stay removable by the user who built it."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        destination = target if path == source else target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def project_checksums(program: GoProgram, source: Path) -> str:
    """The lines of the project's go.sum for the modules the database cannot vouch for."""
    recorded = (source / "go.sum").read_text() if (source / "go.sum").is_file() else ""
    wanted = set(program.recorded_checksums)
    lines = [line for line in recorded.splitlines() if line.split(" ", 1)[0] in wanted]
    found = {line.split(" ", 1)[0] for line in lines}
    if wanted - found:
        raise CommandError(
            f"{program.module} v{program.version}: its go.sum has no checksum for "
            f"{', '.join(sorted(wanted - found))}"
        )
    return "".join(line + "\n" for line in lines)


def build_all(runner: Runner, log: Log, programs: Iterable[GoProgram] = PROGRAMS) -> list[Built]:
    programs = list(programs)
    to_build = [program for program in programs if not program.built]
    if to_build:
        runner.preflight("go", *(["node"] if any(p.prepare for p in to_build) else []))
    return [build(program, runner, log) for program in programs]


def _upstream(program: GoProgram, runner: Runner, work: Path) -> tuple[GoMod, Path]:
    """The program's own go.mod and source folder, from the module proxy (`go mod download`)."""
    done = runner.run(
        "go",
        "mod",
        "download",
        "-json",
        f"{program.module}@v{program.version}",
        cwd=work,
        env=_go_env(program),
        timeout=1800,
    )
    info = json.loads(done.stdout)
    return parse_go_mod(Path(info["GoMod"]).read_text()), Path(info["Dir"])


def _go_env(program: GoProgram) -> dict[str, str]:
    """The wrapper is a module of its own (no workspace), tidy once; static binaries unless the
    project's own release links with cgo."""
    env = {**os.environ, "CGO_ENABLED": "1" if program.cgo else "0"}
    flags = ["-mod=mod", "-buildvcs=false", *env.get("GOFLAGS", "").split()]
    env["GOFLAGS"] = " ".join(dict.fromkeys(flags))
    env["GOWORK"] = "off"
    return env

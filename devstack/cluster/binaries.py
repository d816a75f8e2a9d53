"""The pinned programs (Kubernetes, etcd, kind, Tilt, containerd, ...), built from source through
the Go module proxy, pinned by version (devstack/core/names.py), into the cache outside the
repository (devstack/core/cache.py); kind's node image is built from them (nodeimage.py).

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

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core import names
from devstack.core.cache import binaries_dir
from devstack.core.errors import CommandError
from devstack.core.runner import Runner

Log = Callable[[str], None]


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    """What hack/lib/version.sh stamps: kubeadm, kind and kubectl read the version back."""
    major, minor, _ = version.split(".")
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion=v{version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return tuple(flags)


@dataclass(frozen=True)
class GoProgram:
    """The binaries of one Go module at one version."""

    name: str  # the cache folder: <name>-v<version>
    module: str
    version: str  # without the leading v
    commands: dict[str, str]  # binary -> package
    ldflags: tuple[str, ...] = ()
    # Where the module's go.mod requires its local modules at v0.0.0 (Kubernetes' staging
    # modules), the release they are published at.
    local_version: str | None = None
    cgo: bool = False
    tags: tuple[str, ...] = ()
    # Modules the checksum database does not know (its lookup answers 404), checked against the
    # checksums the project recorded in its own go.sum instead; everything else is checked
    # against the database, as `go` does by default.
    recorded_checksums: tuple[str, ...] = ()
    # Dependencies at a release the Go module proxy refuses, replaced by one it serves:
    # (module, version). Only where the project's own version cannot be had.
    substitutes: tuple[tuple[str, str], ...] = ()
    # Files of the module's own source kept beside the binaries (manifests, kind's base), read
    # from there at `cluster.up` instead of copies in this repository.
    keep: tuple[str, ...] = ()
    # A step of the project's own release that `go build` does not do, run on a writable copy of
    # the module's source (which the wrapper then builds instead of the module cache's copy).
    prepare: Callable[[Path, Runner, Log], None] | None = None

    @property
    def folder(self) -> Path:
        """Keyed by version and by the recipe (a changed ldflag or kept file builds anew)."""
        return binaries_dir() / f"{self.name}-v{self.version}-{self.recipe}"

    @property
    def recipe(self) -> str:
        parts: list[object] = [
            self.module, self.version, sorted(self.commands.items()), self.ldflags,
            self.local_version, self.cgo, self.tags, self.recorded_checksums, self.keep,
            self.prepare.__name__ if self.prepare else None,
        ]  # fmt: skip
        if self.substitutes:  # only where there are some: the other programs' keys stay
            parts.append(self.substitutes)
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:8]

    def path(self, binary: str) -> Path:
        return self.folder / binary

    def kept(self, relative: str) -> Path:
        return self.folder / "source" / relative

    @property
    def built(self) -> bool:
        binaries = all(self.path(binary).is_file() for binary in self.commands)
        return binaries and all(self.kept(relative).exists() for relative in self.keep)


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


K8S = names.KUBERNETES_VERSION
PROGRAMS: tuple[GoProgram, ...] = (
    GoProgram(
        "kubernetes",
        "k8s.io/kubernetes",
        K8S,
        {
            binary: f"k8s.io/kubernetes/cmd/{binary}"
            for binary in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubectl",
                "kubelet",
                "kube-proxy",
                "kubeadm",  # kind's node image: `kind build node-image` copies it in
            )
        },
        _kubernetes_ldflags(K8S),
        local_version="0." + K8S.split(".", 1)[1],
        keep=("build/pause",),  # the pause container's C source (nodeimage.py compiles it)
    ),
    GoProgram(
        "etcd",
        "go.etcd.io/etcd/server/v3",
        names.ETCD_VERSION,
        {"etcd": "go.etcd.io/etcd/server/v3"},
    ),
    GoProgram(
        "tilt",
        "github.com/tilt-dev/tilt",
        names.TILT_VERSION,
        {"tilt": "github.com/tilt-dev/tilt/cmd/tilt"},
        (f"-X main.version={names.TILT_VERSION}", "-X main.date=2025-01-01"),
        cgo=True,  # as Tilt's own linux release (.goreleaser.yml: CGO_ENABLED=1, osusergo)
        tags=("osusergo",),
        # A pseudo-version of Tilt's own fork; sum.golang.org answers 404 for it. (Tilt's go.sum
        # is not taken whole: its docker/buildx v0.32.1 line predates a re-tag that the proxy and
        # the database agree on.)
        recorded_checksums=("github.com/tilt-dev/starlark-lsp",),
        prepare=tilt_web_assets,
    ),
)
# The cluster's add-ons, each what its own release builds (CGO off, the version stamped).
ADDONS: tuple[GoProgram, ...] = (
    GoProgram(
        "metrics-server",
        "sigs.k8s.io/metrics-server",
        names.METRICS_SERVER_VERSION,
        {"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
        # Its Makefile stamps client-go's version package (PKG:=k8s.io/client-go/pkg).
        (f"-X k8s.io/client-go/pkg/version.gitVersion=v{names.METRICS_SERVER_VERSION}",),
        keep=("manifests/base",),  # its APIService, Service and RBAC
    ),
    GoProgram(
        "local-path-provisioner",
        "github.com/rancher/local-path-provisioner",
        names.LOCAL_PATH_PROVISIONER_VERSION,
        {"local-path-provisioner": "github.com/rancher/local-path-provisioner"},
        (f"-X main.VERSION=v{names.LOCAL_PATH_PROVISIONER_VERSION}",),
        keep=("deploy/local-path-storage.yaml",),  # its namespace, RBAC and StorageClass
    ),
    GoProgram(
        "coredns",
        "github.com/coredns/coredns",
        names.COREDNS_VERSION,
        {"coredns": "github.com/coredns/coredns"},
        (f"-X github.com/coredns/coredns/coremain.GitCommit=v{names.COREDNS_VERSION}",),
    ),
)
# Tools of the delivery chain that no package manager here has at the pinned version.
TOOLS: tuple[GoProgram, ...] = (
    GoProgram(
        "kind",
        "sigs.k8s.io/kind",
        names.KIND_VERSION,
        {"kind": "sigs.k8s.io/kind"},
        keep=("images/base",),  # kindest/base's Dockerfile and files, for the node image
    ),
    GoProgram(
        "containerd",
        "github.com/containerd/containerd/v2",
        names.CONTAINERD_VERSION,
        {
            binary: f"github.com/containerd/containerd/v2/cmd/{binary}"
            for binary in ("containerd", "ctr", "containerd-shim-runc-v2")
        },
        (f"-X github.com/containerd/containerd/v2/version.Version=v{names.CONTAINERD_VERSION}",),
        tags=("no_aufs", "no_zfs", "no_btrfs", "no_devmapper"),  # kind's BUILDTAGS
    ),
    GoProgram(
        "flannel",
        "github.com/flannel-io/flannel",
        names.FLANNEL_VERSION,
        {"flanneld": "github.com/flannel-io/flannel"},
        (f"-X github.com/flannel-io/flannel/pkg/version.Version=v{names.FLANNEL_VERSION}",),
        cgo=True,  # its UDP backend on amd64, as its Makefile builds it
        # Its Tencent Cloud backend's SDK: the release it requires is not served; a later one
        # of the same package is (the vxlan backend is what runs here).
        substitutes=(
            ("github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common", "1.3.213"),
        ),
        keep=("Documentation/kube-flannel.yml",),  # its DaemonSet, RBAC and configuration
    ),
    GoProgram(
        "flannel-cni-plugin",
        "github.com/containernetworking/plugins",
        names.FLANNEL_CNI_PLUGIN_VERSION,
        {"flannel": "github.com/containernetworking/plugins/plugins/meta/flannel"},
    ),
    GoProgram(
        "cri-tools",
        "sigs.k8s.io/cri-tools",
        names.CRI_TOOLS_VERSION,
        {"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
        (f"-X sigs.k8s.io/cri-tools/pkg/version.Version=v{names.CRI_TOOLS_VERSION}",),
    ),
    GoProgram(
        "trivy-db",
        "github.com/aquasecurity/trivy-db",
        names.TRIVY_DB_VERSION,
        {"trivy-db": "github.com/aquasecurity/trivy-db/cmd/trivy-db"},
        (f"-X main.version={names.TRIVY_DB_VERSION}",),
    ),
)
PROGRAMS = PROGRAMS + ADDONS + TOOLS
_BY_BINARY = {binary: program for program in PROGRAMS for binary in program.commands}


def program_of(binary: str) -> GoProgram:
    return _BY_BINARY[binary]


def pinned(binary: str) -> Path | None:
    """The cached build of a pinned binary, when there is one."""
    path = program_of(binary).path(binary)
    return path if path.is_file() else None


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
            program.prepare(work / "source", runner, log)
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

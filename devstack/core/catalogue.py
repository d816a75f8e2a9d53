"""The catalogue of pinned programs (Kubernetes, etcd, kind, Tilt, containerd, ...): each one's
module, version, binaries and build recipe, and where its build lives in the cache outside the
repository (devstack/core/cache.py). It runs nothing: devstack/cluster/binaries.py builds them
through the Go module proxy, the preflight (tools.py) finds them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from devstack.core import names
from devstack.core.cache import binaries_dir


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
    # A step of the project's own release that `go build` does not do, by name (the Go build,
    # devstack/cluster/binaries.py, runs it on a writable copy of the module's source, which the
    # wrapper then builds instead of the module cache's copy).
    prepare: str | None = None

    @property
    def folder(self) -> Path:
        """Keyed by version and by the recipe (a changed ldflag or kept file builds anew)."""
        return binaries_dir() / f"{self.name}-v{self.version}-{self.recipe}"

    @property
    def recipe(self) -> str:
        parts: list[object] = [
            self.module, self.version, sorted(self.commands.items()), self.ldflags,
            self.local_version, self.cgo, self.tags, self.recorded_checksums, self.keep,
            self.prepare,
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
        prepare="tilt_web_assets",
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

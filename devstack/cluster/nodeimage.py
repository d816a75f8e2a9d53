"""kind's node image, built here where no image can be pulled, with kind's own builder.

`kind build node-image --type file TARBALL` takes a Kubernetes release tarball
(`kubernetes/version`, `kubernetes/server/bin/{kubeadm,kubelet,kubectl}` and the control plane's
images as `docker save` archives), copies the binaries into a container of the base image,
imports every image of the archives into its containerd, writes kind's CNI and storage
manifests, and commits the container as the node image. Before importing, it pulls what the
archives lack (`kubeadm config images list`, the sandbox image, kindnetd, local-path-provisioner
and its helper) with `ctr content fetch`: the one step that cannot work offline. So those images
are built here too and put into the archives, where kind's own importer takes them (it imports
every image of every archive, and pulls only what none holds).

What is built, each from a pinned source, tagged exactly as kubeadm, kind and the manifests
name it:
- the base: kindest/base's recipe (docker/kind/base.Dockerfile) on the Debian 12 stand-in, with
  kind's own files from its module, containerd and crictl built, Debian's runc and CNI plugins;
- the control plane (kube-apiserver, -controller-manager, -scheduler, kube-proxy), etcd,
  CoreDNS, metrics-server, local-path-provisioner: their pinned builds (binaries.py), on
  scratch (kube-proxy on Debian, for iptables and conntrack);
- pause, compiled from Kubernetes' own source (build/pause/linux/pause.c) as its Makefile does;
- local-path-provisioner's helper: Debian's static busybox;
- flannel (the CNI instead of kindnetd, below) and its CNI plugin;
- kindnetd: its source is a module of its own inside kind's repository
  (sigs.k8s.io/kind/images/kindnetd), which the Go module proxy does not serve. kind's builder
  still wants the image, so an image under its name says so and exits; a cluster on this node
  image runs flannel instead (cluster/cni.py, k8s/cluster/flannel/), and says so.
Every image is rebuilt only when its recipe changes (a label carries the recipe's hash).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core import names
from devstack.core.catalogue import program_of
from devstack.core.errors import DevstackError
from devstack.core.names import REPO
from devstack.core.runner import Runner
from devstack.image.docker import Docker
from devstack.image.standins import ensure_base_images

Log = Callable[[str], None]

K8S = names.KUBERNETES_VERSION
NODE_IMAGE = f"kindest/node:v{K8S}-local"
RECIPE_LABEL = "io.vaia.node-image.recipe"
# The node image carries no kindnetd that runs (see above): cluster.up reads this label.
DEFAULT_CNI_LABEL = "io.vaia.node-image.default-cni"
# What kind v0.27.0's node image preloads beside kubeadm's images (pkg/build/nodeimage).
KINDNETD_IMAGE = "docker.io/kindest/kindnetd:v20250214-acbabc1a"
LOCAL_PATH_PROVISIONER_IMAGE = "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a"
LOCAL_PATH_HELPER_IMAGE = "docker.io/kindest/local-path-helper:v20241212-8ac705d0"
METRICS_SERVER_IMAGE = (
    f"registry.k8s.io/metrics-server/metrics-server:v{names.METRICS_SERVER_VERSION}"
)
PAUSE_VERSION = "3.10"  # containerd's sandbox_image in kind's configuration
# The CNI that runs instead of kindnetd (k8s/cluster/flannel/): preloaded, as kindnetd is.
FLANNEL_IMAGE = f"ghcr.io/flannel-io/flannel:v{names.FLANNEL_VERSION}"
FLANNEL_CNI_PLUGIN_IMAGE = (
    f"docker.io/vaia-local/flannel-cni-plugin:v{names.FLANNEL_CNI_PLUGIN_VERSION}"
)
BASE_DOCKERFILE = REPO / "docker" / "kind" / "base.Dockerfile"


class NodeImageError(DevstackError):
    """The node image could not be built."""


@dataclass(frozen=True)
class Component:
    """One image of the node: its name, its Dockerfile, the files of its build context."""

    name: str
    dockerfile: str
    files: dict[str, Path] = field(default_factory=dict)
    archive: str = "kube-proxy"  # which of the release's archives carries it
    # What its files are made from, where they are made in the build's scratch folder (whose
    # path is new each time) rather than taken from the binaries' cache (keyed by recipe).
    made_from: str | None = None

    def recipe(self) -> str:
        files = self.made_from or sorted((k, str(v)) for k, v in self.files.items())
        parts = [self.name, self.dockerfile, files]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _binary(name: str) -> Path:
    return program_of(name).path(name)


def _static(image: str, binary: str, entrypoint: bool = False, user: str = "") -> Component:
    """A pinned static binary on scratch, in /usr/local/bin (on PATH, as kubeadm runs it)."""
    lines = [
        "FROM scratch",
        f"COPY {binary} /usr/local/bin/{binary}",
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    ]
    if user:
        lines.append(f"USER {user}")
    if entrypoint:
        lines.append(f'ENTRYPOINT ["/usr/local/bin/{binary}"]')
    return Component(image, "\n".join(lines) + "\n", {binary: _binary(binary)})


def components(runner: Runner, work: Path, debian: str) -> list[Component]:
    """Every image the node image holds. `debian`: the Debian stand-in (kube-proxy's base)."""
    registry = "registry.k8s.io"
    pause = work / "pause"
    source = program_of("kubelet").kept("build/pause") / "linux" / "pause.c"
    compile_pause = (
        "cc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}",
        "-o", str(pause), str(source),
    )  # fmt: skip
    runner.run(*compile_pause)
    busybox = Path(runner.command("busybox")[0])
    shell = 'COPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    control_plane = [
        Component(**{**vars(_static(f"{registry}/{name}:v{K8S}", name)), "archive": name})
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    return [
        *control_plane,
        Component(
            f"{registry}/kube-proxy:v{K8S}",
            f"FROM {debian}\n"
            "# hadolint ignore=DL3008\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends iptables "
            "conntrack ipset kmod && rm -rf /var/lib/apt/lists/*\n"
            "COPY kube-proxy /usr/local/bin/kube-proxy\n",
            {"kube-proxy": _binary("kube-proxy")},
        ),
        _static(f"{registry}/etcd:{names.ETCD_VERSION}-0", "etcd"),
        Component(
            f"{registry}/coredns/coredns:v{names.COREDNS_VERSION}",
            'FROM scratch\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n',
            {"coredns": _binary("coredns")},
        ),
        Component(
            f"{registry}/pause:{PAUSE_VERSION}",
            'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n',
            {"pause": pause},
            made_from=repr([*compile_pause[:-3], str(source)]),
        ),
        _static(METRICS_SERVER_IMAGE, "metrics-server", entrypoint=True, user="65534:65534"),
        _static(LOCAL_PATH_PROVISIONER_IMAGE, "local-path-provisioner"),
        Component(LOCAL_PATH_HELPER_IMAGE, f"FROM scratch\n{shell}", {"busybox": busybox}),
        Component(
            FLANNEL_IMAGE,
            f"FROM {debian}\n"
            "# hadolint ignore=DL3008\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends iptables ipset kmod "
            "&& rm -rf /var/lib/apt/lists/*\n"
            "COPY flanneld /opt/bin/flanneld\n",
            {"flanneld": _binary("flanneld")},
        ),
        Component(
            FLANNEL_CNI_PLUGIN_IMAGE,
            f"FROM scratch\n{shell}COPY flannel /flannel\n",
            {"busybox": busybox, "flannel": _binary("flannel")},
        ),
        Component(
            KINDNETD_IMAGE,
            f"FROM scratch\n{shell}"
            'ENTRYPOINT ["/bin/sh", "-c", "echo \'this node image carries no kindnetd: its '
            "module is not served by the Go module proxy; cluster.up installs flannel "
            "(docs/delivery.md)' >&2; exit 1\"]\n",
            {"busybox": busybox},
        ),
    ]


def _build_component(docker: Docker, component: Component, work: Path) -> None:
    label = component.recipe()
    if docker.image_exists(component.name):
        labels = docker.inspect(component.name).get("Config", {}).get("Labels") or {}
        if labels.get(RECIPE_LABEL) == label:
            return
    context = work / "context" / label
    context.mkdir(parents=True)
    for name, path in component.files.items():
        shutil.copy(path, context / name)
    dockerfile = component.dockerfile + f'LABEL {RECIPE_LABEL}="{label}"\n'
    (context / "Dockerfile").write_text(dockerfile)
    docker.build(context, tags=[component.name])


def base_context(work: Path) -> Path:
    """kind's images/base (from its module, kept beside the kind binary), crictl and
    containerd."""
    context = work / "base"
    shutil.copytree(program_of("kind").kept("images/base"), context)
    (context / "bin").mkdir()
    for binary in ("crictl", "containerd", "ctr", "containerd-shim-runc-v2"):
        shutil.copy(_binary(binary), context / "bin" / binary)
    for path in context.rglob("*"):  # the module cache's files are read-only
        path.chmod(0o755 if path.is_dir() else 0o644)
    return context


def recipe(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def qualified(name: str) -> str:
    """An image name as kubeadm and kind write it: docker.io's with its registry."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name if '/' in name else 'library/' + name}"


def repositories_first(saved: Path, target: Path) -> None:
    """`docker save`'s archive with its `repositories` entry first, its names qualified.

    kind's builder takes the names an archive holds from whichever of `manifest.json` and
    `repositories` comes first, and from `manifest.json` it reads only the first image's; it then
    pulls every image it needs that no archive names. `repositories` names every image of the
    archive: first, and with docker.io's names written as kind compares them, it lets kind's own
    importer (`ctr images import`, which reads manifest.json) load them all instead.
    """
    with tarfile.open(saved) as source, tarfile.open(target, "w") as out:
        members = source.getmembers()
        entry = next(m for m in members if m.name == "repositories")
        listed = json.loads(source.extractfile(entry).read())  # type: ignore[union-attr]
        data = json.dumps({qualified(repo): tags for repo, tags in listed.items()}).encode()
        info = tarfile.TarInfo("repositories")
        info.size, info.mtime, info.mode = len(data), entry.mtime, entry.mode
        out.addfile(info, io.BytesIO(data))
        for member in members:
            if member.name != "repositories":
                out.addfile(member, source.extractfile(member) if member.isfile() else None)


def release_tarball(docker: Docker, images: list[Component], work: Path) -> Path:
    """What `kind build node-image --type file` reads, laid out as Kubernetes' release."""
    root = work / "release" / "kubernetes"
    bin_dir = root / "server" / "bin"
    bin_dir.mkdir(parents=True)
    (root / "version").write_text(f"v{K8S}\n")
    for binary in ("kubeadm", "kubelet", "kubectl"):
        shutil.copy(_binary(binary), bin_dir / binary)
        (bin_dir / binary).chmod(0o755)
    archives: dict[str, list[str]] = {}
    for image in images:
        archives.setdefault(image.archive, []).append(image.name)
    for archive, tags in archives.items():
        saved = work / f"{archive}.saved.tar"
        docker.run(["save", "-o", str(saved), *tags], timeout=900)
        repositories_first(saved, bin_dir / f"{archive}.tar")
        saved.unlink()
    tarball = work / "kubernetes-server-linux-amd64.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        tar.add(root, arcname="kubernetes")
    return tarball


def build(docker: Docker, runner: Runner, log: Log, image: str = NODE_IMAGE) -> str:
    """The node image (kind's builder on the base and the tarball), unless built from the same
    recipe already; its name."""
    runner.preflight("kind", "cc", "busybox")
    with tempfile.TemporaryDirectory(prefix="vaia-node-image-") as tmp:
        work = Path(tmp)
        stand_ins = ensure_base_images(docker, log)
        images = components(runner, work, stand_ins.builder)
        base_recipe = BASE_DOCKERFILE.read_text()
        node_recipe = recipe(
            [
                base_recipe,
                stand_ins.builder,
                str(program_of("kind").folder),
                str(program_of("crictl").folder),
                str(program_of("containerd").folder),
                str(program_of("kubeadm").folder),
                *sorted(c.recipe() for c in images),
            ]
        )
        if _labelled(docker, image, node_recipe):
            log(f"{image}: built from this recipe already ({node_recipe})")
            return image
        base = f"kindest/base:vaia-{node_recipe}"
        if not _labelled(docker, base, node_recipe):
            log(f"{base}: kindest/base's recipe on the Debian stand-in")
            docker.build(
                base_context(work),
                tags=[base],
                dockerfile=BASE_DOCKERFILE,
                build_args={"BASE": stand_ins.builder},
                labels={RECIPE_LABEL: node_recipe, DEFAULT_CNI_LABEL: "flannel"},
            )
        for component in images:
            _build_component(docker, component, work)
        log(f"{len(images)} images for the node, named as kubeadm, kind and the manifests do")
        tarball = release_tarball(docker, images, work)
        log(f"kind build node-image --type file {tarball.name} --base-image {base}")
        runner.run(
            "kind", "build", "node-image", "--type", "file", "--base-image", base,
            "--image", image, str(tarball), timeout=1800,
        )  # fmt: skip
    if not _labelled(docker, image, node_recipe):
        raise NodeImageError(f"kind build node-image left no {image} with the recipe's label")
    return image


def _labelled(docker: Docker, image: str, value: str) -> bool:
    if not docker.image_exists(image):
        return False
    labels = docker.inspect(image).get("Config", {}).get("Labels") or {}
    return labels.get(RECIPE_LABEL) == value

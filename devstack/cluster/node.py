"""The local engine's real node: a kubelet of the pinned build on this machine, joined to the
control plane kwokctl runs, with Debian's containerd (the CRI plugin, a configuration of our own,
not the one Docker uses), runc and CNI plugins (bridge, host-local, portmap, loopback), and
kube-proxy. They are components of the same kwokctl cluster (started in the order of their
links, stopped and removed with it); CoreDNS runs as a pod (k8s/cluster/local/coredns.yaml)
from an image of its pinned build, and metrics-server, already a component, reads the kubelet.

This sandbox's limits, and the setting that answers each (docs/testing.md says why):
- the bounding set lacks CAP_SYS_RESOURCE, so lowering an oom_score_adj is refused: containerd's
  `restrict_oom_score_adj` (never below its own), the kubelet's `KubeletInUserNamespace` feature
  gate (its -999 and the sysctls it cannot write become warnings), and raising RLIMIT_NOFILE
  fails, which the kubelet only logs;
- cgroup v1: the cgroupfs driver (no systemd here), for the kubelet and for runc;
- no swap accounting: `failSwapOn: false`.
Everything the node writes is under /var/lib/vaia-local and /run/vaia-local; `cluster.down`
stops the pods through the kubelet first, then removes what is left (shims, mounts, the bridge,
kube-proxy's rules).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.binaries import program_of
from devstack.cluster.kind import ClusterCli
from devstack.core import names
from devstack.core.errors import DevstackError
from devstack.core.runner import Runner
from devstack.core.wait import wait_until
from devstack.image.docker import Docker

Log = Callable[[str], None]

NODE = f"{names.LOCAL_CLUSTER}-node"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"  # kind's
CLUSTER_DNS = "10.96.0.10"  # kube-dns, as kubeadm and kind number it
API_SERVER_NAMES = [
    "10.96.0.1",  # the `kubernetes` Service: the first address of SERVICE_CIDR
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]
BRIDGE = "vaia0"
NODE_TOOLS = (
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "cni-plugins",
    "kubelet",
    "kube-proxy",
    "iptables",
    "conntrack",
    "ip",
    "cc",
    "coredns",
    "busybox",
)
REGISTRY = names.REGISTRY_HOST


@dataclass(frozen=True)
class NodePaths:
    lib: Path = Path("/var/lib/vaia-local")
    run: Path = Path("/run/vaia-local")

    @property
    def config(self) -> Path:
        return self.lib / "config"

    @property
    def containerd_config(self) -> Path:
        return self.config / "containerd.toml"

    @property
    def socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def cni(self) -> Path:
        return self.config / "cni"

    @property
    def certs(self) -> Path:
        return self.config / "certs.d"

    @property
    def kubelet_config(self) -> Path:
        return self.config / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.config / "kube-proxy.yaml"

    @property
    def kubelet_root(self) -> Path:
        return self.lib / "kubelet"


def node_ip() -> str:
    """This machine's address on its default route (what pods reach the host at, and the API
    server advertises): the source address a UDP socket would use; nothing is sent."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))
        address = str(probe.getsockname()[0])
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if address.startswith("127."):
        raise DevstackError(
            "the real node needs an address other than loopback (pods reach the API server and "
            "the kubelet there): this machine has no route; use --node kwok"
        )
    return address


def _accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def wait_for_containerd(paths: NodePaths, timeout: float = 60) -> None:
    """Until containerd accepts connections on its socket (its first start on a fresh state
    folder loads its plugins and makes its database before it listens)."""
    wait_until(
        lambda: _accepts(paths.socket),
        timeout,
        lambda: DevstackError(
            f"containerd does not answer on {paths.socket} after {timeout:.0f} s: see its log "
            "(`kwokctl logs containerd --name vaia-local`)"
        ),
    )


# --- configuration ----------------------------------------------------------------------------


def containerd_config(paths: NodePaths) -> str:
    """containerd's own configuration (v2), its CRI plugin on, nothing shared with Docker's."""
    return f"""\
version = 2
root = "{paths.lib / "containerd"}"
state = "{paths.run / "containerd"}"

[grpc]
  address = "{paths.socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{REGISTRY}/vaia-local/pause:{pause_version()}"
  # No CAP_SYS_RESOURCE in this sandbox: an oom_score_adj below containerd's own is refused,
  # so none is asked for (the pod sandboxes' -998 becomes containerd's value).
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state folder, not /run/netns: `cluster.down` finds all.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false  # cgroup v1, no systemd: the cgroupfs driver, as the kubelet's
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{paths.cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{paths.certs}"
"""


def registry_hosts() -> dict[str, str]:
    """containerd's certs.d: the local registry over plain HTTP on loopback, and the same
    registry as docker.io's mirror, so that the upstream names the manifests use (redis,
    chromadb/chroma, busybox) come from the stand-ins pushed there, unchanged."""
    local = (
        f'[host."http://127.0.0.1:{names.REGISTRY_PORT}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    return {
        REGISTRY: f'server = "http://127.0.0.1:{names.REGISTRY_PORT}"\n' + local,
        "docker.io": 'server = "https://registry-1.docker.io"\n' + local,
    }


def cni_config() -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": names.LOCAL_CLUSTER,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            # Where Docker runs too, its FORWARD policy is DROP, and with br_netfilter on even
            # pod-to-pod traffic on the bridge passes that chain: the firewall plugin accepts
            # each pod's traffic in a CNI-FORWARD chain of its own (podman's answer to the same).
            {"type": "firewall", "backend": "iptables"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(paths: NodePaths, ca_file: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",  # cgroup v1 without systemd
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "failSwapOn": False,
        # Its own oom_score_adj (-999) and some kernel sysctls cannot be written here (no
        # CAP_SYS_RESOURCE): the gate makes those errors warnings instead of a failed start.
        "featureGates": {"KubeletInUserNamespace": True},
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},  # the API server's and metrics-server's
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [CLUSTER_DNS],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        # A laptop's or a CI runner's disk is shared with everything else: evict only when
        # nearly full, and never collect images a test is about to run.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
    }


def kube_proxy_config(kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE,
        "clusterCIDR": CLUSTER_CIDR,
        "mode": "iptables",
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
    }


def write_node_files(paths: NodePaths, workdir: Path) -> None:
    paths.config.mkdir(parents=True, exist_ok=True)
    paths.cni.mkdir(exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths))
    (paths.cni / "10-vaia-local.conflist").write_text(json.dumps(cni_config(), indent=2))
    for host, toml in registry_hosts().items():
        (paths.certs / host).mkdir(parents=True, exist_ok=True)
        (paths.certs / host / "hosts.toml").write_text(toml)
    ca = workdir / "pki" / "ca.crt"
    paths.kubelet_config.write_text(yaml.safe_dump(kubelet_config(paths, ca)))
    paths.kube_proxy_config.write_text(
        yaml.safe_dump(kube_proxy_config(workdir / "kubeconfig.yaml"))
    )


def components(runner: Runner, paths: NodePaths, workdir: Path) -> list[dict[str, Any]]:
    """containerd, the kubelet and kube-proxy as kwokctl components."""
    kubeconfig = str(workdir / "kubeconfig.yaml")
    return [
        {
            "name": "containerd",
            "binary": runner.command("containerd")[0],
            "args": ["--config", str(paths.containerd_config)],
            "workDir": str(workdir),
        },
        {
            "name": "kubelet",
            "binary": runner.command("kubelet")[0],
            "args": [
                f"--config={paths.kubelet_config}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE}",
                f"--node-ip={node_ip()}",
                f"--root-dir={paths.kubelet_root}",
            ],
            "links": ["kube-apiserver", "containerd"],
            "workDir": str(workdir),
        },
        {
            "name": "kube-proxy",
            "binary": runner.command("kube-proxy")[0],
            "args": [f"--config={paths.kube_proxy_config}"],
            "links": ["kube-apiserver"],
            "workDir": str(workdir),
        },
    ]


def control_plane_patches(workdir: Path) -> list[dict[str, Any]]:
    """What the API server and the controllers need to serve a real node: kind's Service range
    (kube-dns at 10.96.0.10), the kubelet reached at its address (this machine's name does not
    resolve to it) and with a client certificate its authenticator trusts (`kubectl logs`,
    `exec`, `port-forward`, Tilt's live update)."""
    pki = workdir / "pki"
    return [
        {
            "name": "kube-apiserver",
            "extraArgs": [
                {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                {"key": "kubelet-preferred-address-types", "value": "InternalIP,Hostname"},
                {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
                {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
            ],
        },
        {
            "name": "kube-controller-manager",
            "extraArgs": [{"key": "service-cluster-ip-range", "value": SERVICE_CIDR}],
        },
    ]


# --- images the node pulls ----------------------------------------------------------------------


def pause_version() -> str:
    """The pause image's version as Kubernetes' own build/pause/Makefile states it."""
    makefile = program_of("kubelet").kept("build/pause") / "Makefile"
    for line in makefile.read_text().splitlines():
        if line.startswith("TAG ?="):
            return line.split("=", 1)[1].strip()
    raise DevstackError(f"no TAG in {makefile}")


@dataclass(frozen=True)
class NodeImage:
    """An image of the node's own, built FROM scratch of one file of this machine, pushed under
    the name the cluster pulls it by."""

    name: str  # in the local registry
    dockerfile: str
    files: dict[str, Path]  # name in the build context -> the file here


def node_images(runner: Runner, work: Path) -> list[NodeImage]:
    """pause, compiled from Kubernetes' own source (build/pause/linux/pause.c, as its Makefile
    does); CoreDNS, its pinned build; busybox, Debian's static one, for local-path-provisioner's
    helper pods (which its manifest names `busybox`: docker.io's mirror is the registry)."""
    (work / "bin").mkdir(exist_ok=True)
    pause = work / "bin" / "pause"
    source = program_of("kubelet").kept("build/pause") / "linux" / "pause.c"
    runner.run(
        "cc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{pause_version()}",
        "-o", str(pause), str(source),
    )  # fmt: skip
    return [
        NodeImage(
            f"{REGISTRY}/vaia-local/pause:{pause_version()}",
            'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n',
            {"pause": pause},
        ),
        NodeImage(
            f"{REGISTRY}/vaia-local/coredns:{names.COREDNS_VERSION}",
            'FROM scratch\nCOPY coredns /coredns\nUSER 65532:65532\nENTRYPOINT ["/coredns"]\n',
            {"coredns": Path(runner.command("coredns")[0])},
        ),
        NodeImage(
            f"{REGISTRY}/library/busybox:latest",
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nENTRYPOINT ["/bin/sh"]\n',
            {"busybox": Path(runner.command("busybox")[0])},
        ),
    ]


def registry_name(image: str) -> str:
    """Where a docker.io name lives in the registry that mirrors it: redis:7 -> library/redis:7."""
    path = image.split("@")[0]
    first = path.split("/", 1)[0]
    if "/" in path and ("." in first or ":" in first or first == "localhost"):
        raise DevstackError(f"{image} is not a docker.io image: the mirror cannot serve it")
    return f"{REGISTRY}/{path if '/' in path else 'library/' + path}"


def push_node_images(docker: Docker, runner: Runner, stores: dict[str, str], log: Log) -> None:
    """The node's images and the stores' stand-ins (`stores`: upstream name -> local image),
    pushed into the local registry. Each build is cached by docker; a push of layers the
    registry holds is a manifest check."""
    with tempfile.TemporaryDirectory() as tmp:
        for image in node_images(runner, Path(tmp)):
            context = Path(tmp) / "context" / image.name.rsplit("/", 1)[-1].split(":")[0]
            context.mkdir(parents=True)
            for name, path in image.files.items():
                shutil.copy(path, context / name)
            (context / "Dockerfile").write_text(image.dockerfile)
            docker.build(context, tags=[image.name])
            docker.run(["push", image.name], timeout=600)
    for upstream, local in stores.items():
        target = registry_name(upstream)
        docker.run(["tag", local, target])
        docker.run(["push", target], timeout=900)
    log(f"node images and the stores' stand-ins pushed to {REGISTRY}")


# --- down -------------------------------------------------------------------------------------


def drain(cli: ClusterCli, log: Log, timeout: str = "120s") -> None:
    """Every pod off the node through the kubelet (containers stopped, sandboxes and their
    network torn down by the runtime), before the node's processes stop."""
    if cli.kubectl("get", "node", NODE, "-o", "name", check=False).returncode != 0:
        return
    cli.kubectl("cordon", NODE, check=False)
    done = cli.kubectl(
        "delete", "pods", "--all-namespaces", f"--field-selector=spec.nodeName={NODE}",
        "--grace-period=2", "--wait=true", f"--timeout={timeout}", check=False,
    )  # fmt: skip
    if done.returncode != 0:
        log(f"the node's pods did not all stop in time ({done.stderr.strip()[-200:]}): forcing")


def clean_up(runner: Runner, paths: NodePaths, log: Log) -> None:
    """What the node leaves when its processes are gone: processes still in the kubelet's
    cgroups, kube-proxy's iptables rules, mounts under the node's folders, the bridge, the CNI
    plugins' state. Each step checks first, so a second run does nothing."""
    killed = kill_pod_processes()
    if killed:
        log(f"stopped {killed} process(es) left in the node's cgroups")
    remove_pod_cgroups()
    runner.run("kube-proxy", "--cleanup", check=False, timeout=60)
    for mount in mounts_under(paths.lib, paths.run):
        _unmount(mount)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        runner.run("ip", "link", "delete", BRIDGE, check=False)
    for cni_state in (Path("/var/lib/cni/networks") / names.LOCAL_CLUSTER,):
        shutil.rmtree(cni_state, ignore_errors=True)
    for result in Path("/var/lib/cni/results").glob(f"{names.LOCAL_CLUSTER}-*"):
        result.unlink(missing_ok=True)
    for folder in (paths.lib, paths.run):
        if folder.exists():
            shutil.rmtree(folder)
    log(f"the node's folders, mounts, bridge {BRIDGE} and Service rules removed")


KUBEPODS = "kubepods"  # the kubelet's cgroup (cgroupfs driver), in every v1 hierarchy


def _pod_cgroups() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    found = []
    for hierarchy in sorted(root.iterdir()) if root.exists() else []:
        top = hierarchy / KUBEPODS
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def kill_pod_processes() -> int:
    pids = set()
    for cgroup in _pod_cgroups():
        procs = cgroup / "cgroup.procs"
        if procs.exists():
            pids |= {int(pid) for pid in procs.read_text().split()}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        time.sleep(0.5)
    return len(pids)


def remove_pod_cgroups() -> None:
    for cgroup in _pod_cgroups():
        with contextlib.suppress(OSError):  # still busy, or gone: the next run tries again
            cgroup.rmdir()


def mounts_under(*folders: Path) -> list[str]:
    """Mount points below the folders, deepest first (from /proc/self/mountinfo)."""
    prefixes = tuple(str(f) for f in folders)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def _unmount(point: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(point.encode(), 2) != 0:  # MNT_DETACH: lazily, if still busy
        errno = ctypes.get_errno()
        if errno not in (22, 2):  # EINVAL (not a mount any more), ENOENT
            raise DevstackError(f"could not unmount {point}: {os.strerror(errno)}")


def store_standins(docker: Docker, root: Path, log: Log) -> dict[str, str]:
    """The stores' images as the manifests name them (redis, chromadb/chroma) -> the stand-ins
    the Compose stack builds from Debian and PyPI packages (no registry can be pulled from)."""
    from devstack.cluster.render import render
    from devstack.image.compose import standin_service_images
    from devstack.verify.manifests import find, pod_spec

    built = standin_service_images(docker, log)
    objs = render(root, "dev")
    upstream = {
        name: pod_spec(find(objs, "StatefulSet", name))["containers"][0]["image"]
        for name in ("redis", "chromadb")
    }
    return {upstream["redis"]: built["REDIS_IMAGE"], upstream["chromadb"]: built["CHROMA_IMAGE"]}

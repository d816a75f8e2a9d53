"""Names every part of the project shares (docs/design.md). YAML files cannot import these; the
static tests check that compose.yaml, the manifests and pyproject.toml agree with them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: Dockerfile, k8s/, loadtest/, ...

IMAGE = "vaia-agent"  # the image, and the agent's Deployment, Service, HPA and PDB
NAMESPACE = "vaia"
CLUSTER = "vaia"  # kind
CONTEXT = f"kind-{CLUSTER}"
REGISTRY = "kind-registry"  # the local registry's container
REGISTRY_PORT = 5001  # on 127.0.0.1; kind-registry:5000 inside the cluster network
REGISTRY_HOST = f"localhost:{REGISTRY_PORT}"
CONFIG_MAP = "vaia-agent-config"
SECRET = "vaia-agent-secrets"  # noqa: S105 - a name, not a value
AGENT_PORT = 8080
CHROMADB_VERSION = "1.5.9"  # the client the agent pins, the server image, the stand-in
# The upstream images the deploy runs beside the agent (manifests and compose.yaml; stand-ins of
# them are built here where nothing can be pulled: devstack/image/compose.py).
REDIS_IMAGE = "redis:7.4.2-bookworm"
CHROMA_IMAGE = f"chromadb/chroma:{CHROMADB_VERSION}"
# Chroma's 1.x server has no authentication of its own: an nginx in its pod lets through only
# requests with the agent's token (k8s/base/chromadb.yaml, docs/delivery.md).
CHROMA_PROXY_IMAGE = "nginxinc/nginx-unprivileged:1.28.0"
SOURCE = "https://github.com/vaia-devstack/vaia-devstack"

# One Kubernetes version everywhere: the binaries built here (devstack/cluster/binaries.py) and the
# node image built from them, the kind node image and kubectl of the workflows, the schema
# kubernetes-validate checks against and the namespace's Pod Security version
# (tests/devstack/core/test_names.py checks they agree).
# 1.32.2: kind v0.27's node image and the workflows' kubectl, the minor the manifests were first
# validated against, a kubelet that runs on cgroup v1 hosts without opting in (1.35 turns
# failCgroupV1 on), and a patch whose every staging module the Go module proxy serves (1.32.13's
# k8s.io/endpointslice is refused there).
KUBERNETES_VERSION = "1.32.2"
KUBERNETES_MINOR = ".".join(KUBERNETES_VERSION.split(".")[:2])
# What builds kind's node image here (`invoke cluster.build --node-image`) and the tools around it,
# each from its Go module:
ETCD_VERSION = "3.5.16"  # what kubeadm 1.32 runs
TILT_VERSION = "0.37.6"  # the workflows' pin
COREDNS_VERSION = "1.11.3"  # what kubeadm 1.32 runs
METRICS_SERVER_VERSION = "0.7.2"  # k8s/cluster/metrics-server
LOCAL_PATH_PROVISIONER_VERSION = "0.0.30"  # kind's default StorageClass, `standard`
KIND_VERSION = "0.27.0"  # the workflows' pin (helm/kind-action's `version`)
# crictl in kind's node image (kind v0.27 builds 1.32.0, which the Go module proxy does not serve;
# the CRI it speaks is the same v1 API).
CRI_TOOLS_VERSION = "1.34.0"
# The CNI of a node image built here (kindnetd's module is not served by the Go module proxy):
# flannel, and its CNI plugin from the last containernetworking/plugins release that carried it.
FLANNEL_VERSION = "0.28.4"  # 0.28.10 needs a tencentcloud SDK release the proxy does not serve
FLANNEL_CNI_PLUGIN_VERSION = "0.9.1"
CONTAINERD_VERSION = "2.0.2"  # kind v0.27's node (its builder runs `ctr info`, which 1.6 lacks)
# Trivy's database builder (github.com/aquasecurity/trivy-db has no releases: a pseudo-version of
# its main branch, schema 2, the schema trivy 0.5x-0.7x reads).
TRIVY_DB_VERSION = "0.0.0-20260813095258-0e0340a01b57"

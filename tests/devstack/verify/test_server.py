"""`invoke verify --server` against kind's real API server: every overlay passes its
server-side dry run; a broken copy is refused in the server's own words (strict validation, the
PodSecurity admission's `would violate`); the cluster's own `vaia` namespace is left alone."""

import shutil

import pytest
import yaml

from devstack.cluster.cli import ClusterCli
from devstack.core.names import CONTEXT, NAMESPACE
from devstack.core.runner import Runner
from devstack.verify.report import run_all
from tests.support.cluster import ROOT, fresh_namespace, get, kubectl, wait_for

pytestmark = pytest.mark.cluster


def server() -> ClusterCli:
    return ClusterCli(Runner(), CONTEXT)


def server_checks(root):
    return [
        c for c in run_all(root, with_scanners=False, server=server()) if "API server" in c.name
    ]


def test_every_overlay_passes_its_server_side_dry_run(kind_cluster) -> None:
    checks = server_checks(ROOT)
    assert len(checks) == 6 and all(c.passed for c in checks), [c for c in checks if not c.passed]


def test_a_broken_copy_is_refused_by_the_server_and_vaia_is_left_alone(
    kind_cluster, tmp_path
) -> None:
    fresh_namespace()
    kubectl("apply", "-f", str(ROOT / "k8s" / "base" / "namespace.yaml"))
    kubectl("-n", NAMESPACE, "create", "configmap", "keep-me", "--from-literal=a=b")
    root = tmp_path / "copy"
    shutil.copytree(ROOT / "k8s", root / "k8s")
    shutil.copy(ROOT / "kind-config.yaml", root / "kind-config.yaml")
    path = root / "k8s" / "base" / "redis.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    container = docs[1]["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    container["securityContext"]["allowPrivilegeEscalation"] = True
    docs[0]["spec"]["notAField"] = 1
    path.write_text(yaml.safe_dump_all(docs))
    failed = [c for c in server_checks(root) if not c.passed]
    problems = " ".join(p for c in failed for p in c.problems)
    assert 'would violate PodSecurity "restricted:' in problems
    assert "privileged" in problems
    assert ".spec.notAField: field not declared in schema" in problems
    assert {c.subject for c in failed} == {f"k8s/overlays/{o}" for o in ("dev", "ci", "prod")}
    # Nothing of the dry runs stays: the user's namespace as it was, the temporary ones gone.
    assert get("-n", NAMESPACE, "get", "configmap", "keep-me")["data"] == {"a": "b"}
    assert kubectl("-n", NAMESPACE, "get", "statefulset", "-o", "name").stdout == ""
    wait_for(
        lambda: not [
            n for n in get("get", "namespaces")["items"]
            if n["metadata"]["name"].startswith("vaia-verify-")
        ],
        120,
        "the temporary namespaces deleted",
    )  # fmt: skip

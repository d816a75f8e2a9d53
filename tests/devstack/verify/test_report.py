"""`invoke verify`'s report, on this repository and on broken copies of it."""

import shutil

import pytest

from devstack.verify.report import run_all
from tests.conftest import ROOT

pytestmark = pytest.mark.static


def copy_of_the_cluster_files(tmp_path):
    for name in ("k8s",):
        shutil.copytree(ROOT / name, tmp_path / name)
    for name in ("kind-config.yaml",):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_every_check_passes_on_this_repository() -> None:
    checks = run_all(ROOT, with_scanners=False)  # the scanners run per overlay in tests/k8s
    assert [c for c in checks if not c.passed] == []
    subjects = {c.subject for c in checks}
    assert subjects == {
        "k8s/overlays/dev",
        "k8s/overlays/ci",
        "k8s/overlays/prod",
        "kind-config.yaml",
    }
    assert len(checks) >= 3 * 7 + 1


def test_a_broken_copy_fails_the_checks_that_matter(tmp_path) -> None:
    root = copy_of_the_cluster_files(tmp_path)
    base = root / "k8s" / "base" / "kustomization.yaml"
    base.write_text(base.read_text().replace("  - agent-secret.yaml\n", ""))  # no Secret at all
    kind = root / "kind-config.yaml"
    kind.write_text(kind.read_text().replace("name: vaia", "name: dev"))
    failed = {(c.subject, c.name) for c in run_all(root, with_scanners=False) if not c.passed}
    assert (
        "kind-config.yaml",
        "the vaia cluster, certs.d, loopback only (kind checks its own fields)",
    ) in failed
    for overlay in ("dev", "ci", "prod"):
        assert (f"k8s/overlays/{overlay}", "ConfigMap and Secret references") in failed

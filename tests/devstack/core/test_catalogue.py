"""The catalogue of pinned programs: one program per binary, and the cache keyed by version and
recipe."""

import dataclasses

import pytest

from devstack.core import catalogue as c

pytestmark = pytest.mark.unit


def program(name: str) -> c.GoProgram:
    return next(p for p in c.PROGRAMS if p.name == name)


def test_the_cache_is_keyed_by_version_and_recipe(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VAIA_CACHE_DIR", str(tmp_path))
    metrics = program("metrics-server")
    other = dataclasses.replace(metrics, ldflags=("-X main.version=other",))
    newer = dataclasses.replace(metrics, version="0.7.3")
    assert len({metrics.folder, other.folder, newer.folder}) == 3
    assert metrics.folder.parent == tmp_path / "bin"
    assert metrics.folder.name.startswith("metrics-server-v0.7.2-")
    assert not metrics.built
    metrics.path("metrics-server").parent.mkdir(parents=True)
    metrics.path("metrics-server").write_text("")
    assert not metrics.built  # its kept manifests are part of the build
    metrics.kept("manifests/base").mkdir(parents=True)
    assert metrics.built
    assert c.pinned("metrics-server") == metrics.path("metrics-server")


def test_every_pinned_binary_belongs_to_one_program() -> None:
    binaries = [binary for p in c.PROGRAMS for binary in p.commands]
    assert len(binaries) == len(set(binaries))
    assert {"kube-apiserver", "kubelet", "kubeadm", "etcd", "kind", "tilt", "trivy-db"} <= set(
        binaries
    )

"""The Tiltfile as the real Tilt loads it (`tilt alpha tiltfile-result`, the pinned build, against
the kind cluster the Tiltfile asks about), on this checkout and on broken copies: each class of
mistake the deleted Starlark model of Tilt caught fails here, through Tilt's own loader where Tilt
decides, and through a check on what Tilt loaded where Tilt does not (a sync source that does not
exist, a port-forward to a port the container lacks, a sync where the code does not run)."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.core.tools import require
from tests.support.cluster import checkout_copy

pytestmark = pytest.mark.cluster


def load(checkout: Path, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """Tilt's exit code, its result (JSON) and its log."""
    done = subprocess.run(
        [require("tilt"), "alpha", "tiltfile-result", "-f", str(checkout / "Tiltfile")],
        cwd=checkout, capture_output=True, text=True, timeout=300, check=False,
        env=env,
    )  # fmt: skip
    result = json.loads(done.stdout) if done.returncode == 0 else None
    return done.returncode, result, done.stderr


def problems(result: Any, checkout: Path) -> list[str]:
    """What Tilt loads but never checks: each sync's source exists, each port-forward reaches a
    port a container of its resource declares, each sync lands where a container mounts the code."""
    found = []
    for manifest in result["Manifests"]:
        deploy = manifest.get("DeployTarget") or {}
        objects = [o for o in yaml.safe_load_all(deploy.get("yaml") or "") if o]
        containers = [
            c
            for o in objects
            if o.get("kind") in ("Deployment", "StatefulSet")
            for c in o["spec"]["template"]["spec"]["containers"]
        ]
        ports = {p["containerPort"] for c in containers for p in c.get("ports", [])}
        forwards = (deploy.get("portForwardTemplateSpec") or {}).get("forwards", [])
        for forward in forwards:
            if forward["containerPort"] not in ports:
                found.append(f"{manifest['Name']}: port-forward to {forward['containerPort']}")
        mounts = {m["mountPath"] for c in containers for m in c.get("volumeMounts", [])}
        for image in manifest.get("ImageTargets") or []:
            for sync in (image.get("LiveUpdateSpec") or {}).get("syncs", []):
                if not (checkout / sync["localPath"]).exists():
                    found.append(f"{manifest['Name']}: sync from missing {sync['localPath']}")
                if sync["containerPath"] not in mounts:
                    found.append(f"{manifest['Name']}: sync to {sync['containerPath']}, no mount")
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    return checkout_copy(tmp_path_factory.mktemp("tiltfile") / "checkout")


def broken(checkout: Path, old: str, new: str) -> Path:
    tiltfile = checkout / "Tiltfile"
    text = (checkout / "Tiltfile.orig").read_text()
    assert old in text
    tiltfile.write_text(text.replace(old, new))
    return checkout


@pytest.fixture
def copy(checkout) -> Path:
    original = checkout / "Tiltfile.orig"
    if not original.exists():
        original.write_text((checkout / "Tiltfile").read_text())
    yield checkout
    (checkout / "Tiltfile").write_text(original.read_text())


def test_the_tiltfile_loads_and_what_it_loads_holds_together(kind_cluster, copy) -> None:
    code, result, log = load(copy)
    assert code == 0, log[-3000:]
    assert problems(result, copy) == []
    names = {m["Name"] for m in result["Manifests"]}
    assert {"vaia-namespace", "vaia-secrets", "redis", "chromadb", "vaia-agent"} <= names


def test_tilt_refuses_an_unknown_argument(kind_cluster, copy) -> None:
    code, _, log = load(broken(copy, "    target='dev',\n", "    target='dev',\n    tagret=1,\n"))
    assert code != 0
    assert 'docker_build: unexpected keyword argument "tagret"' in log


def test_tilt_refuses_a_sync_from_outside_the_build_context(kind_cluster, copy) -> None:
    code, _, log = load(broken(copy, "sync('agent',", "sync('../agent',"))
    assert code != 0
    assert "is not a child of any watched filepaths" in log


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("sync('agent',", "sync('agnet',", "vaia-agent: sync from missing agnet"),
        ("'/app/agent'),", "'/srv/agent'),", "vaia-agent: sync to /srv/agent, no mount"),
        ("port_forwards='8080:8080'", "port_forwards='8080:8081'", "port-forward to 8081"),
    ],
)
def test_what_tilt_loads_but_never_checks_fails_the_check(
    kind_cluster, copy, old, new, problem
) -> None:
    code, result, log = load(broken(copy, old, new))
    assert code == 0, log[-3000:]  # Tilt takes it: the mistake would show only at run time
    assert any(problem in p for p in problems(result, copy)), problems(result, copy)


def test_the_tiltfile_refuses_a_context_it_is_not_meant_for(kind_cluster, copy, tmp_path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "prod", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "prod", "user": {}}],
                "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
                "current-context": "prod",
            }
        )
    )

    code, _, log = load(copy, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert code != 0
    assert "tilt up needs the kube context kind-vaia (current: prod)" in log

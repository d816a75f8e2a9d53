"""The CD chain for real, as far as this machine allows: the offline image, the Trivy gate with a
vulnerability database built here by Trivy's own builder from real advisory records, a push to
a real registry (Debian's docker-registry on 127.0.0.1), and the image pulled back by digest.
Every finding below is one the real Trivy read from that database."""

import json
import os
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest

from devstack.core.names import CHROMA_IMAGE, CHROMA_PROXY_IMAGE, REDIS_IMAGE
from devstack.core.tools import require
from devstack.release.registry import PushRefusedError, push
from devstack.release.scan import ScanError, ScanOptions, passed_scan, record_path, run_gate
from tests.conftest import ROOT
from tests.support.processes import ManagedProcess, free_port

pytestmark = pytest.mark.container
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
CHROMA_ADVISORIES = {
    "CVE-2026-45829": "CRITICAL",
    "CVE-2026-45833": "CRITICAL",
    "GHSA-2wm9-hf6c-p5cr": "HIGH",
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real registry (distribution v2, Debian's docker-registry) on a free loopback port."""
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    (work / "config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + str(work / "data") + "\n"
        "  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + str(port) + "\n"
    )
    process = ManagedProcess(
        "docker-registry",
        [require("docker-registry"), "serve", str(work / "config.yml")],
        port,
        work / "registry.log",
    )
    process.start()
    yield f"localhost:{port}"
    process.stop()


def tags_in(registry: str) -> list[str]:
    response = httpx.get(f"http://{registry}/v2/vaia-agent/tags/list")
    return response.json().get("tags") or [] if response.status_code == 200 else []


def gate(image, image_id, tmp_path, db, root=ROOT, **kwargs):
    options = ScanOptions(cache_dir=db, skip_db_update=True, max_db_age_days=7)
    return run_gate(
        root, image, image_id, tmp_path / "reports", options, log=lambda _: None, **kwargs
    )


@contextmanager
def derived_image(docker, context, dockerfile: str):
    """A throwaway image on top of the offline one, under a fresh sha- tag; removed afterwards."""
    (context / "Dockerfile").write_text(dockerfile)
    tag = f"vaia-agent:sha-{os.urandom(4).hex()[:7]}"
    docker.build(context, tags=[tag])
    try:
        yield tag
    finally:
        docker.run(["rmi", "-f", tag], check=False)


@pytest.fixture(scope="module")
def werkzeug_files(tmp_path_factory):
    """Werkzeug 0.15.2's files as pip installs them (its wheel, from PyPI, unpacked): a real
    package inside the range of GHSA-gq9m-qvpx-68hc (CVE-2019-14806, HIGH, fixed in 0.15.3)."""
    work = tmp_path_factory.mktemp("werkzeug")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "-q", "--no-deps"),
            *("werkzeug==0.15.2", "-d", str(work / "wheels")),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = (work / "wheels").glob("*.whl")
    site = work / "context" / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    return work / "context"


@pytest.fixture
def canary(docker, offline_image, werkzeug_files):
    """The agent's image with one known-vulnerable package added to its venv."""
    dockerfile = (
        f"FROM {offline_image}\nCOPY site-packages/ /opt/venv/lib/python3.11/site-packages/\n"
    )
    with derived_image(docker, werkzeug_files, dockerfile) as tag:
        yield tag


def test_the_agent_image_passes_a_gate_that_read_real_advisories(
    docker, offline_image, vulnerability_db, registry, tmp_path
) -> None:
    image_id = docker.inspect(offline_image)["Id"]
    result = gate(offline_image, image_id, tmp_path, vulnerability_db)
    assert result.passed and result.blocking == []
    assert "advisories (newest 2026-" in result.database
    assert passed_scan(ROOT, image_id)["database"] == result.database
    names = {p.name for p in (tmp_path / "reports").iterdir()}
    assert {
        "vulnerabilities.json",
        "vulnerabilities.sarif",
        "image-misconfig-secret.sarif",
        "manifests.json",
        "sbom.cdx.json",
    } <= names
    sarif = json.loads((tmp_path / "reports" / "manifests.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    sbom = json.loads((tmp_path / "reports" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    shipped = {c["name"] for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    assert {"fastapi", "chromadb-client", "redis", "google-genai"} <= shipped

    ref = push(docker, ROOT, offline_image, registry)
    assert ref.startswith(f"{registry}/vaia-agent@sha256:")
    assert offline_image.split(":")[1] in tags_in(registry)
    docker.run(["rmi", ref.split("@")[0] + ":" + offline_image.split(":")[1]], check=False)
    docker.run(["rmi", ref], check=False)
    docker.run(["pull", ref])
    assert docker.inspect(ref)["Id"] == image_id  # the same image came back


def test_a_known_vulnerable_package_fails_the_gate_and_push_refuses_it(
    docker, canary, vulnerability_db, registry, tmp_path
) -> None:
    image_id = docker.inspect(canary)["Id"]
    result = gate(canary, image_id, tmp_path, vulnerability_db)
    assert not result.passed
    [finding] = result.blocking
    assert (finding.id, finding.severity, finding.package, finding.fixed) == (
        "CVE-2019-14806",
        "HIGH",
        "Werkzeug 0.15.2",
        "0.15.3",
    )
    assert not record_path(ROOT, image_id).exists()
    with pytest.raises(PushRefusedError, match="has no passed scan"):
        push(docker, ROOT, canary, registry)
    assert canary.split(":")[1] not in tags_in(registry)


def ignore_file(root, expires, purl="pkg:pypi/werkzeug@0.15.2"):
    (root / ".trivyignore.yaml").write_text(
        "vulnerabilities:\n"
        "  - id: CVE-2019-14806\n"
        f'    purls: ["{purl}"]\n'
        "    statement: the canary's werkzeug serves no request, tracked in OPS-12\n"
        f"    expired_at: {expires}\n"
    )
    return root


def test_an_accepted_finding_passes_with_its_statement_until_its_expiry(
    docker, canary, vulnerability_db, tmp_path
) -> None:
    image_id = docker.inspect(canary)["Id"]
    root = ignore_file(tmp_path, "2027-01-31")
    accepted = gate(canary, image_id, tmp_path, vulnerability_db, root=root, ours=False, now=NOW)
    assert accepted.passed
    [item] = accepted.accepted
    assert (item.id, item.package, item.status) == ("CVE-2019-14806", "Werkzeug 0.15.2", "ignored")
    assert "tracked in OPS-12" in item.statement
    # On its date the entry has expired: the gate says so before scanning anything.
    on_the_day = NOW.replace(year=2027, month=1, day=31)
    with pytest.raises(ScanError, match=r"expired entries: CVE-2019-14806 \(expired 2027-01-31\)"):
        gate(canary, image_id, tmp_path, vulnerability_db, root=root, ours=False, now=on_the_day)
    # An entry for another package accepts nothing here.
    other = ignore_file(tmp_path, "2027-01-31", purl="pkg:pypi/werkzeug@3.1.3")
    result = gate(canary, image_id, tmp_path, vulnerability_db, root=other, ours=False, now=NOW)
    assert [f.id for f in result.blocking] == ["CVE-2019-14806"]


def test_a_report_that_changed_shape_fails_closed(
    docker, offline_image, vulnerability_db, tmp_path, monkeypatch
) -> None:
    """The real trivy, with `Results` taken out of its JSON on the way (as a format change
    would): the gate cannot tell the image is clean, so it fails."""
    wrapper = tmp_path / "bin" / "trivy"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\n{require("trivy")} "$@" | {sys.executable} -c '
        "'import json,sys; r=json.load(sys.stdin); r.pop(\"Results\",None); print(json.dumps(r))'\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    assert require("trivy") == str(wrapper)
    with pytest.raises(ScanError, match="has no Results"):
        gate(offline_image, docker.inspect(offline_image)["Id"], tmp_path, vulnerability_db)


def test_a_stale_database_is_refused(docker, offline_image, vulnerability_db, tmp_path) -> None:
    import shutil

    stale = tmp_path / "cache"
    shutil.copytree(vulnerability_db / "db", stale / "db")
    metadata = json.loads((stale / "db" / "metadata.json").read_text())
    metadata["UpdatedAt"] = "2026-10-01T00:00:00Z"
    (stale / "db" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ScanError, match="days old, over the limit of 7: a stale database"):
        gate(offline_image, docker.inspect(offline_image)["Id"], tmp_path, stale, now=NOW)


def test_the_chroma_server_carries_unpatched_criticals_that_only_their_exception_passes(
    docker, standin_services, vulnerability_db, tmp_path
) -> None:
    image = standin_services[CHROMA_IMAGE]
    image_id = docker.inspect(image)["Id"]
    (tmp_path / "bare").mkdir()
    bare = gate(image, image_id, tmp_path, vulnerability_db, root=tmp_path / "bare", ours=False)
    assert {(f.id, f.severity, f.package, f.fixed) for f in bare.blocking} == {
        (ident, severity, "chromadb 1.5.9", "") for ident, severity in CHROMA_ADVISORIES.items()
    }
    # With the repository's exceptions (scoped to chromadb 1.5.9, with their statement):
    excepted = gate(image, image_id, tmp_path, vulnerability_db, ours=False, now=NOW)
    assert excepted.passed
    assert {a.id for a in excepted.accepted} == set(CHROMA_ADVISORIES)
    assert all("auth" in a.statement or "token" in a.statement for a in excepted.accepted)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """`invoke <args>` in the repository, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_invoke_scan_gates_every_image_the_deploy_runs_then_push_takes_the_agent(
    offline_image, standin_services, vulnerability_db, registry
) -> None:
    scanned = invoke(
        "scan", "--image", offline_image, "--cache-dir", str(vulnerability_db), "--offline"
    )
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    for name in (offline_image, REDIS_IMAGE, CHROMA_IMAGE, CHROMA_PROXY_IMAGE):
        assert name in scanned.stdout
    assert scanned.stdout.count("passed, recorded") == 4
    assert scanned.stdout.count("vulnerability database") == 4
    for ident in CHROMA_ADVISORIES:
        assert f"accepted {ident} in chromadb 1.5.9" in scanned.stdout
    pushed = invoke("push", "--image", offline_image, "--registry", registry)
    assert pushed.returncode == 0, pushed.stderr
    [line] = [line for line in pushed.stdout.splitlines() if line.startswith("pushed: ")]
    assert line.startswith(f"pushed: {registry}/vaia-agent@sha256:")


def test_invoke_scan_of_the_canary_names_the_advisory_and_fails(
    canary, standin_services, vulnerability_db
) -> None:
    done = invoke("scan", "--image", canary, "--cache-dir", str(vulnerability_db), "--offline")
    assert done.returncode == 1
    assert "BLOCKS HIGH vulnerability CVE-2019-14806" in done.stdout
    assert "Werkzeug 0.15.2, fixed in 0.15.3" in done.stdout
    assert f"error: blocking findings ({canary}: 1)" in done.stderr


def test_invoke_scan_fails_closed_when_the_vulnerability_db_is_unreachable(
    offline_image, tmp_path
) -> None:
    done = invoke(
        "scan", "--image", offline_image, "--cache-dir", str(tmp_path),
        "--db-repository", "127.0.0.1:9/none/trivy-db",
    )  # fmt: skip
    assert done.returncode == 1
    assert "vulnerability database could not be read" in done.stderr
    assert "invoke vulndb" in done.stderr and "--cache-dir" in done.stderr


def manifest_digest(registry: str, tag: str) -> str:
    accept = (
        "application/vnd.oci.image.manifest.v1+json,"
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    response = httpx.head(
        f"http://{registry}/v2/vaia-agent/manifests/{tag}", headers={"Accept": accept}
    )
    assert response.status_code == 200, (tag, response.status_code)
    return response.headers["Docker-Content-Digest"]


def test_a_planted_secret_stops_the_chain_before_push(
    docker, offline_image, vulnerability_db, registry, tmp_path
) -> None:
    (tmp_path / "token.txt").write_text(
        "github_token = ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "\n"
    )
    with derived_image(
        docker, tmp_path, f"FROM {offline_image}\nCOPY token.txt /app/token.txt\n"
    ) as tag:
        result = gate(tag, docker.inspect(tag)["Id"], tmp_path, vulnerability_db)
        assert not result.passed and [f.kind for f in result.blocking] == ["secret"]
        with pytest.raises(PushRefusedError):
            push(docker, ROOT, tag, registry)


def test_a_release_pushes_its_version_and_its_sha_tag_as_one_digest(
    docker, offline_image, vulnerability_db, registry, tmp_path
) -> None:
    version = f"vaia-agent:9.{os.getpid() % 1000}.0"
    docker.run(["tag", offline_image, version])
    try:
        gate(offline_image, docker.inspect(offline_image)["Id"], tmp_path, vulnerability_db)
        ref = push(docker, ROOT, [offline_image, version], registry)
        sha_tag, semver = offline_image.split(":")[1], version.split(":")[1]
        assert {sha_tag, semver} <= set(tags_in(registry))
        digest = ref.split("@")[1]
        assert manifest_digest(registry, sha_tag) == manifest_digest(registry, semver) == digest
    finally:
        docker.run(["rmi", version], check=False)

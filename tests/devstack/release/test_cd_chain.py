"""The CD chain for real, as far as this machine allows: the offline image, the Trivy gate (its
offline scanners for real, vulnerabilities from a report fixture), a push to a real registry
(Debian's docker-registry on 127.0.0.1), and the image pulled back by digest."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import date

import httpx
import pytest

from devstack.core.tools import require
from devstack.release.registry import PushRefusedError, push
from devstack.release.scan import ScanError, passed_scan, record_path, run_gate
from tests.conftest import ROOT
from tests.support.processes import ManagedProcess, free_port

pytestmark = pytest.mark.container
FIXTURES = ROOT / "tests" / "fixtures"


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


def gate(image, image_id, tmp_path, report="trivy-vuln-clean.json", **kwargs):
    return run_gate(
        ROOT,
        image,
        image_id,
        tmp_path / "reports",
        vuln_report=FIXTURES / report,
        log=lambda _: None,
        **kwargs,
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


def test_scan_push_and_pull_back_by_digest(docker, offline_image, registry, tmp_path) -> None:
    image_id = docker.inspect(offline_image)["Id"]
    result = gate(offline_image, image_id, tmp_path)
    assert result.passed and result.blocking == []
    assert passed_scan(ROOT, image_id)["vulnerability_source"].startswith("report ")
    names = {p.name for p in (tmp_path / "reports").iterdir()}
    assert {
        "vulnerabilities.json",
        "vulnerabilities.sarif",
        "image-misconfig-secret.sarif",
        "manifests.json",
    } <= names
    sarif = json.loads((tmp_path / "reports" / "manifests.sarif").read_text())
    assert sarif["version"] == "2.1.0"

    ref = push(docker, ROOT, offline_image, registry)
    assert ref.startswith(f"{registry}/vaia-agent@sha256:")
    assert offline_image.split(":")[1] in tags_in(registry)
    docker.run(["rmi", ref.split("@")[0] + ":" + offline_image.split(":")[1]], check=False)
    docker.run(["rmi", ref], check=False)
    docker.run(["pull", ref])
    assert docker.inspect(ref)["Id"] == image_id  # the same image came back


def test_an_unscanned_image_cannot_be_pushed(docker, offline_image, registry, tmp_path) -> None:
    with derived_image(docker, tmp_path, f"FROM {offline_image}\nLABEL unscanned=true\n") as tag:
        with pytest.raises(PushRefusedError, match="has no passed scan"):
            push(docker, ROOT, tag, registry)
        assert tag.split(":")[1] not in tags_in(registry)


def test_a_high_vulnerability_stops_the_chain_before_push(
    docker, offline_image, registry, tmp_path
) -> None:
    with derived_image(docker, tmp_path, f"FROM {offline_image}\nLABEL vulnerable=true\n") as tag:
        image_id = docker.inspect(tag)["Id"]
        result = gate(tag, image_id, tmp_path, report="trivy-vuln-report.json")
        assert not result.passed and [f.id for f in result.blocking] == ["CVE-2099-0001"]
        assert not record_path(ROOT, image_id).exists()
        with pytest.raises(PushRefusedError):
            push(docker, ROOT, tag, registry)
        assert tag.split(":")[1] not in tags_in(registry)


def test_a_planted_secret_stops_the_chain_before_push(
    docker, offline_image, registry, tmp_path
) -> None:
    (tmp_path / "token.txt").write_text(
        "github_token = ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "\n"
    )
    with derived_image(
        docker, tmp_path, f"FROM {offline_image}\nCOPY token.txt /app/token.txt\n"
    ) as tag:
        result = gate(tag, docker.inspect(tag)["Id"], tmp_path)
        assert not result.passed and [f.kind for f in result.blocking] == ["secret"]
        with pytest.raises(PushRefusedError):
            push(docker, ROOT, tag, registry)


def test_an_expired_trivyignore_entry_fails_the_gate(docker, offline_image, tmp_path) -> None:
    ignore = tmp_path / ".trivyignore"
    ignore.write_text("# waiting for the upstream fix\nCVE-2099-0001 exp:2026-01-31\n")
    with pytest.raises(ScanError, match=r"expired entries: CVE-2099-0001 \(expired 2026-01-31\)"):
        gate(
            offline_image,
            docker.inspect(offline_image)["Id"],
            tmp_path,
            ignore_file=ignore,
            today=date(2026, 11, 28),
        )
    # Renewed with a future expiry, the same entry lets the finding through.
    ignore.write_text("# waiting for the upstream fix\nCVE-2099-0001 exp:2027-01-31\n")
    result = gate(
        offline_image,
        docker.inspect(offline_image)["Id"],
        tmp_path,
        report="trivy-vuln-report.json",
        ignore_file=ignore,
        today=date(2026, 11, 28),
    )
    assert result.passed


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """`invoke <args>` in the repository, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_invoke_scan_fails_closed_when_the_vulnerability_db_is_unreachable(offline_image) -> None:
    done = invoke("scan", "--image", offline_image, "--db-repository", "127.0.0.1:9/none/trivy-db")
    assert done.returncode == 1
    assert "vulnerability database could not be fetched" in done.stderr
    assert "--vuln-report" in done.stderr and "--cache-dir" in done.stderr


def test_invoke_scan_and_push_tasks_end_to_end(offline_image, registry) -> None:
    scanned = invoke(
        "scan", "--image", offline_image, "--vuln-report", str(FIXTURES / "trivy-vuln-clean.json")
    )
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    assert "scan passed" in scanned.stdout
    pushed = invoke("push", "--image", offline_image, "--registry", registry)
    assert pushed.returncode == 0, pushed.stderr
    [line] = [line for line in pushed.stdout.splitlines() if line.startswith("pushed: ")]
    assert line.startswith(f"pushed: {registry}/vaia-agent@sha256:")


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


def test_a_release_pushes_its_version_and_its_sha_tag_as_one_digest(
    docker, offline_image, registry, tmp_path
) -> None:
    version = f"vaia-agent:9.{os.getpid() % 1000}.0"
    docker.run(["tag", offline_image, version])
    try:
        gate(offline_image, docker.inspect(offline_image)["Id"], tmp_path)
        ref = push(docker, ROOT, [offline_image, version], registry)
        sha_tag, semver = offline_image.split(":")[1], version.split(":")[1]
        assert {sha_tag, semver} <= set(tags_in(registry))
        digest = ref.split("@")[1]
        assert manifest_digest(registry, sha_tag) == manifest_digest(registry, semver) == digest
    finally:
        docker.run(["rmi", version], check=False)

"""The image: static checks of the Dockerfile, then the real offline build, run and scanned."""

import json
import re
import subprocess
import time

import httpx
import pytest

from devstack.core.tools import require
from devstack.image.build import (
    SIZE_BUDGET_BYTES,
    cached_steps,
    copy_context,
    git_state,
    labels,
    pip_ca_file,
)
from devstack.image.standins import standin_tags
from devstack.perf.image import edit_code
from devstack.release.trivy import config_scan, findings, image_scan
from tests.conftest import ROOT
from tests.support.processes import RESTRICTED, free_port, wait_until

RUNTIME_MODULES = [
    "google.genai",
    "chromadb",
    "fastapi",
    "uvicorn",
    "redis.asyncio",
    "prometheus_client",
    "pydantic_settings",
    "tenacity",
    "httpx",
    "numpy",
    "grpc",
    "opentelemetry.sdk",
    "httptools",
    "agent.app",
    "agent.llm.gemini",
    "agent.embeddings.gemini",
    "agent.store.vector",
]


@pytest.mark.static
def test_hadolint_is_clean_and_every_ignore_is_justified() -> None:
    files = [ROOT / "Dockerfile", *sorted((ROOT / "docker" / "standins").glob("*.Dockerfile"))]
    result = subprocess.run([require("hadolint"), *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    for file in files:
        lines = file.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                    f"{file.name}:{i + 1}: say why above the ignore"
                )


@pytest.mark.static
def test_trivy_config_finds_no_high_or_critical_in_the_dockerfiles() -> None:
    report = config_scan(ROOT / "Dockerfile")
    assert findings(report) == []
    for standin in (ROOT / "docker" / "standins").glob("*.Dockerfile"):
        assert findings(config_scan(standin)) == []


@pytest.mark.static
def test_trivy_config_would_catch_a_root_image(tmp_path) -> None:
    """Control: the same scan flags a Dockerfile that runs as root with a secret in ENV."""
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM debian:12\nUSER root\nENV AWS_SECRET_ACCESS_KEY=abc\nCMD ["sh"]\n')
    ids = {f.id for f in findings(config_scan(bad))}
    assert ids, "trivy found nothing in a deliberately bad Dockerfile"


@pytest.mark.static
def test_dockerfile_contract() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
    assert stages[0] == "builder" and "dev" in stages and stages[-1] == "runtime"
    assert "ARG BUILDER_IMAGE=debian:12-slim" in text
    assert "ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot" in text
    assert "# syntax" not in text  # would pull a frontend image
    runtime = text.split("AS runtime", 1)[1]
    assert "USER 65532:65532" in runtime and "EXPOSE 8080" in runtime
    for label in ("revision", "source", "version", "created"):
        assert f"org.opencontainers.image.{label}=" in runtime
    assert "--mount=type=secret,id=pip_ca" in text
    assert "--require-hashes" in text


@pytest.mark.static
def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # deny by default, then allow what the Dockerfile copies
    copied = set(
        re.findall(
            r"^COPY (?!--from)(?:--chown=\S+ )?(\S+)", (ROOT / "Dockerfile").read_text(), re.M
        )
    )
    for source in copied:
        assert f"!{source}" in rules or f"!{source}/" in rules, source


# --- container tier: the real thing --------------------------------------------------------------


@pytest.mark.container
def test_image_is_within_the_size_budget(docker, offline_image) -> None:
    size = int(docker.inspect(offline_image)["Size"])
    print(f"{offline_image}: {size / 1e6:.1f} MB")
    assert size <= SIZE_BUDGET_BYTES


@pytest.mark.container
def test_the_venv_breakdown_adds_up(docker, offline_image) -> None:
    """What `invoke bench --image` prints about /opt/venv, read inside the image."""
    from devstack.perf.breakdown import venv_breakdown

    venv = venv_breakdown(docker, offline_image)
    assert venv.total == sum(size for size, _ in venv.packages)
    assert venv.total < int(docker.inspect(offline_image)["Size"])
    names = [name for _, name in venv.packages]
    assert "numpy.libs" in names[:3] and "pip" not in names
    assert venv.kinds["bytecode"] > 0 and venv.kinds["extension modules"] > 0


@pytest.mark.container
def test_image_metadata(docker, offline_image) -> None:
    config = docker.inspect(offline_image)["Config"]
    assert config["User"] == "65532:65532"
    assert "8080/tcp" in config["ExposedPorts"]
    expected = labels(git_state(ROOT))
    assert config["Labels"]["org.opencontainers.image.revision"] == expected["REVISION"]
    assert config["Labels"]["org.opencontainers.image.version"] == expected["VERSION"]
    assert config["Labels"]["org.opencontainers.image.created"] == expected["CREATED"]
    assert config["Labels"]["org.opencontainers.image.source"].startswith("https://")


@pytest.mark.container
def test_every_runtime_dependency_imports_inside_the_image(docker, offline_image) -> None:
    code = (
        f"import importlib; [importlib.import_module(m) for m in {RUNTIME_MODULES!r}]; print('ok')"
    )
    result = docker.run(
        [
            "run",
            "--rm",
            "--read-only",
            "--entrypoint",
            "/opt/venv/bin/python",
            offline_image,
            "-c",
            code,
        ]
    )
    assert result.stdout.strip() == "ok"


@pytest.mark.container
def test_no_pip_no_shell_no_secrets_in_the_image(docker, offline_image) -> None:
    probe = "import importlib.util, os; print(importlib.util.find_spec('pip'), os.path.exists('/bin/sh'), os.path.exists('/usr/bin/bash'))"
    result = docker.run(
        ["run", "--rm", "--entrypoint", "/opt/venv/bin/python", offline_image, "-c", probe]
    )
    assert result.stdout.split() == ["None", "False", "False"]
    history = json.dumps(docker.run(["history", "--no-trunc", offline_image]).stdout)
    ca = pip_ca_file()
    if ca:
        assert str(ca) not in history and "BEGIN CERTIFICATE" not in history


@pytest.mark.container
def test_runs_read_only_as_non_root_and_serves_health(docker, offline_image) -> None:
    port = free_port()
    name = f"vaia-test-{port}"
    docker.run(
        [
            "run",
            "-d",
            "--name",
            name,
            *RESTRICTED,
            "-p",
            f"127.0.0.1:{port}:8080",
            offline_image,
        ]
    )
    try:
        started = time.monotonic()
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200,
            60,
            "container /health",
        )
        print(f"container ready in {time.monotonic() - started:.2f}s")
        uid = docker.run(
            [
                "exec",
                name,
                "/opt/venv/bin/python",
                "-c",
                "import os; print(os.getuid(), os.getgid())",
            ]
        )
        assert uid.stdout.split() == ["65532", "65532"]
        # Swagger UI's assets are stored compressed in the image, served either way.
        for encoding in ("gzip", "identity"):
            asset = httpx.get(
                f"http://127.0.0.1:{port}/docs/assets/swagger-ui-bundle.js",
                headers={"accept-encoding": encoding},
            )
            assert asset.status_code == 200 and b"SwaggerUIBundle" in asset.content
        ready = httpx.get(f"http://127.0.0.1:{port}/ready").json()
        # Without CHROMA_HOST the thin client cannot embed a store, and says so.
        assert "CHROMA_HOST" in ready["checks"]["chromadb"]["error"]
        wait_until(
            lambda: docker.inspect_container(name)["State"]["Health"]["Status"] == "healthy",
            60,
            "HEALTHCHECK",
        )
        logs = docker.run(["logs", name]).stderr.splitlines()
        assert all(line.startswith("{") for line in logs if line.strip())  # JSON logs only
    finally:
        docker.run(["rm", "-f", name], check=False)


@pytest.mark.container
def test_trivy_finds_no_misconfig_or_secret_in_the_image(offline_image) -> None:
    assert findings(image_scan(offline_image)) == []


@pytest.mark.container
def test_trivy_secret_scan_would_catch_a_planted_secret(docker, offline_image, tmp_path) -> None:
    """Control for the clean scan above: the same scan of an image with a planted token fails."""
    (tmp_path / "Dockerfile").write_text(f"FROM {offline_image}\nCOPY token.txt /app/token.txt\n")
    (tmp_path / "token.txt").write_text(
        "github_token = ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + "\n"
    )
    tag = "vaia-test/planted-secret:1"
    docker.build(tmp_path, tags=[tag])
    try:
        assert any(f.kind == "secret" for f in findings(image_scan(tag)))
    finally:
        docker.run(["rmi", "-f", tag], check=False)


@pytest.mark.container
def test_editing_agent_code_reuses_the_dependency_layers(docker, offline_image, tmp_path) -> None:
    """Rebuild after a code-only change: every dependency step comes from the cache."""
    context = copy_context(ROOT, tmp_path / "context")
    edited_version = edit_code(context)  # unique: the cache cannot know it
    bases = standin_tags()
    ca = pip_ca_file()
    tag = "vaia-test/edited:1"
    result = docker.build(
        context,
        tags=[tag],
        build_args={"BUILDER_IMAGE": bases.builder, "RUNTIME_IMAGE": bases.runtime},
        secrets={"pip_ca": ca} if ca else None,
    )
    try:
        cached = " ".join(cached_steps(result.log))
        assert "pip install --no-deps --require-hashes" in cached
        assert "slim-venv.py /opt/venv" in cached
        assert "COPY --from=slim /opt/venv /opt/venv" in cached
        assert "COPY agent /app/agent" not in cached  # the edit did rebuild the code layer
        version = docker.run(
            [
                "run",
                "--rm",
                "--entrypoint",
                "/opt/venv/bin/python",
                tag,
                "-c",
                "import agent; print(agent.__version__)",
            ]
        ).stdout.strip()
        assert version == edited_version
        edited, original = (docker.inspect(t)["RootFS"]["Layers"] for t in (tag, offline_image))
        assert len(edited) == len(original)
        assert (
            sum(a != b for a, b in zip(edited, original, strict=True)) == 1
        )  # only the code layer
    finally:
        docker.run(["rmi", "-f", tag], check=False)


@pytest.mark.container
def test_dev_target_has_a_shell_tar_and_a_writable_app_dir(docker, dev_image) -> None:
    tag = dev_image
    probe = (
        "id -u; command -v tar; stat -c %u /app /app/agent; touch /app/agent/probe && echo writable"
    )
    result = docker.run(["run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", probe])
    lines = result.stdout.split()
    assert lines[0] == "65532" and lines[1].endswith("/tar")
    assert lines[2:4] == ["65532", "65532"] and lines[-1] == "writable"
    config = docker.inspect(tag)["Config"]
    assert config["Cmd"] == ["serve", "--reload"]

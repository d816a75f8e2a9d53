"""Chroma's auth proxy (k8s/base/chromadb-auth/) on its own, in the stand-in of its image: what it
refuses to start with, and what it lets through. The cluster and Compose tests run it in front of
the real Chroma server."""

import secrets
import subprocess

import pytest

from devstack.core.names import CHROMA_PROXY_IMAGE
from tests.conftest import ROOT

pytestmark = pytest.mark.container
CONFIG = ROOT / "k8s" / "base" / "chromadb-auth"


def run_proxy(
    docker, image: str, token: str, script: str, token_dir=None
) -> subprocess.CompletedProcess[str]:
    """`script` in bash in the proxy's image, as the manifests run it (read-only root, /tmp
    writable, not root): the token in the environment (Compose), or with `token_dir`, as the
    file the cluster mounts from the Secret."""
    if token_dir is not None:
        (token_dir / "token").write_text(token)
        (token_dir / "token").chmod(0o644)  # as a Secret volume mounts it
        token_dir.chmod(0o755)
        given = ["-e", "CHROMA_AUTH_TOKEN_FILE=/run/secrets/chromadb-auth/token"]
        given += ["-v", f"{token_dir}:/run/secrets/chromadb-auth:ro"]
    else:
        given = ["-e", f"CHROMA_AUTH_TOKEN={token}"]
    return subprocess.run(
        [
            *docker.runner.command("docker"), "run", "--rm", "--read-only", "--tmpfs", "/tmp",
            "--user", "65532:65532", *given, "-v", f"{CONFIG}:/etc/chromadb-auth:ro",
            "--entrypoint", "/bin/bash", image, "-c", script,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def proxy_image(standin_services) -> str:
    return standin_services[CHROMA_PROXY_IMAGE]


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "CHROMA_AUTH_TOKEN must be set"),
        ("short-token", "at least 32 characters"),
        ("a token with spaces that is long enough to pass", "A-Z a-z 0-9 _ - only"),
        ("x" * 40 + '"; allow all; "', "A-Z a-z 0-9 _ - only"),
    ],
)
def test_the_proxy_refuses_to_start_without_a_strong_token(
    docker, proxy_image, token, says
) -> None:
    done = run_proxy(docker, proxy_image, token, "sh /etc/chromadb-auth/start.sh")
    assert done.returncode == 1 and says in done.stderr


@pytest.mark.parametrize("given", ["environment", "file"])
def test_only_the_token_passes_and_the_heartbeat_needs_none(
    docker, proxy_image, given, tmp_path
) -> None:
    token = secrets.token_urlsafe(32)
    script = (
        "sh /etc/chromadb-auth/start.sh & sleep 1\n"
        'req() { exec 3<>/dev/tcp/127.0.0.1/8000 && printf "$1" >&3 && head -n1 <&3; }\n'
        "req 'GET /api/v2/heartbeat HTTP/1.0\\r\\n\\r\\n'\n"
        "req 'POST /api/v2/tenants/t/databases/d/collections HTTP/1.0\\r\\n\\r\\n'\n"
        "req 'GET /api/v2/collections HTTP/1.0\\r\\nAuthorization: Bearer \\r\\n\\r\\n'\n"
        f"req 'GET /api/v2/collections HTTP/1.0\\r\\nAuthorization: Bearer {token}x\\r\\n\\r\\n'\n"
        f"req 'GET /api/v2/collections HTTP/1.0\\r\\nAuthorization: Basic {token}\\r\\n\\r\\n'\n"
        f"req 'GET /api/v2/collections HTTP/1.0\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n'\n"
    )
    done = run_proxy(
        docker, proxy_image, token, script, token_dir=tmp_path if given == "file" else None
    )
    statuses = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("HTTP/")]
    # Nothing listens on 8001 here: a request let through meets 502 from nginx, one refused 401.
    assert statuses == ["502", "401", "401", "401", "401", "502"], done.stdout + done.stderr

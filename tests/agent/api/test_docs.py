"""/docs renders offline: in a real headless Chromium whose name resolution is cut off from
everything but 127.0.0.1, the Swagger UI must render every operation from packaged assets."""

import re
import shutil
import subprocess

import httpx
import pytest

from agent.app import create_app
from devstack.harness.services import in_thread
from tests.agent.api.conftest import api_settings

pytestmark = pytest.mark.integration


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("this test needs a headless Chromium: apt-get install -y chromium")
    return found


def rendered_dom(url: str, profile) -> str:
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # No internet, whatever the machine has: a CDN asset fails at once, as it does offline.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--virtual-time-budget=20000",  # lets the page fetch /openapi.json and render
        "--dump-dom",
        url,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_docs_render_every_operation_offline_in_a_real_browser(tmp_path) -> None:
    app = create_app(api_settings(tmp_path / "chroma", seed_on_startup=False))
    paths = set(app.openapi()["paths"])
    with in_thread(app) as base:
        page = httpx.get(base + "/docs").text
        assert not re.search(r"""(src|href)="https?://""", page), "the page loads from elsewhere"
        dom = rendered_dom(base + "/docs", tmp_path / "profile")
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == paths, f"Swagger UI rendered {sorted(rendered)}"
    assert "/v1/agent/infer" in rendered


def test_docs_assets_are_served_from_the_package(client) -> None:
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/redoc").status_code == 404  # ReDoc's page would need a CDN


def test_assets_stored_compressed_are_served_either_way(tmp_path) -> None:
    """The image keeps the big assets as .gz only (Dockerfile): browsers get them compressed,
    clients that do not accept gzip get them decompressed, unknown names stay 404."""
    import gzip

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from agent.api.routes.docs import Assets

    script = b"window.ui = 1;\n" * 1000
    (tmp_path / "bundle.js.gz").write_bytes(gzip.compress(script))
    (tmp_path / "plain.css").write_text("body {}")
    app = FastAPI()
    app.mount("/a", Assets(directory=tmp_path))
    client = TestClient(app)
    compressed = client.get("/a/bundle.js", headers={"accept-encoding": "gzip"})
    assert compressed.status_code == 200 and compressed.content == script  # httpx decodes
    assert compressed.headers["content-encoding"] == "gzip"
    assert "javascript" in compressed.headers["content-type"]
    plain = client.get("/a/bundle.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == script
    assert client.get("/a/plain.css").text == "body {}"
    assert client.get("/a/missing.js").status_code == 404

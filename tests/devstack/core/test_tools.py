import os
import stat

import pytest

from devstack.core.errors import MissingToolError
from devstack.core.tools import TOOLS, inspect, parse_version, python_packages, require

pytestmark = pytest.mark.unit


def fake_tool(directory, name: str, output: str, code: int = 0) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("kind v0.27.0 go1.23.4 linux/amd64", (0, 27, 0)),
        ("Redis server v=7.0.15 sha=0", (7, 0, 15)),
        ("Client Version: v1.32.4", (1, 32, 4)),
        ("Version: 0.76.1", (0, 76, 1)),
        ("no digits", None),
    ],
)
def test_parse_version(text, version) -> None:
    assert parse_version(text) == version


def test_missing_tool_message_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VAIA_CACHE_DIR", str(tmp_path / "cache"))  # no pinned build either
    with pytest.raises(
        MissingToolError,
        match=r"^tilt not found: invoke cluster.build .*; or see https://docs.tilt.dev/install.html$",
    ):
        require("tilt")


def test_a_pinned_build_in_the_cache_is_found_before_the_path(monkeypatch, tmp_path) -> None:
    from devstack.core.catalogue import program_of

    fake_tool(tmp_path, "kubectl", "Client Version: v1.30.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VAIA_CACHE_DIR", str(tmp_path / "cache"))
    assert require("kubectl") == str(tmp_path / "kubectl")
    pinned = program_of("kubectl").path("kubectl")
    pinned.parent.mkdir(parents=True)
    fake_tool(pinned.parent, "kubectl", "Client Version: v1.32.2")
    assert require("kubectl") == str(pinned)


def test_found_tool_reports_path_and_version(monkeypatch, tmp_path) -> None:
    fake_tool(tmp_path, "redis-server", "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc")
    monkeypatch.setenv("PATH", str(tmp_path))
    status = inspect("redis-server")
    assert status.ok and status.version == "7.0.15"
    assert require("redis-server") == str(tmp_path / "redis-server")


def test_too_old_tool_is_refused(monkeypatch, tmp_path) -> None:
    fake_tool(tmp_path, "redis-server", "Redis server v=5.0.7 sha=00000000:0")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"redis-server 5\.0\.7 is older than 6\.0"):
        require("redis-server")


def test_a_pinned_build_comes_before_the_one_on_path(monkeypatch, tmp_path) -> None:
    """kind (like kubectl and tilt): the build of the pinned version in the cache, else PATH's."""
    from devstack.core.catalogue import program_of

    fake_tool(tmp_path, "kind", "kind v0.11.1 go1.16")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VAIA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(MissingToolError, match=r"kind 0\.11\.1 is older than 0\.20"):
        require("kind")
    pinned = program_of("kind").path("kind")
    pinned.parent.mkdir(parents=True)
    fake_tool(pinned.parent, "kind", "kind v0.27.0 go1.26.8 linux/amd64")
    assert require("kind") == str(pinned) and inspect("kind").version == "0.27.0"


def test_every_tool_has_an_install_hint_and_purpose() -> None:
    for tool in TOOLS.values():
        assert tool.install and tool.purpose and tool.version_args


def test_python_packages_reports_versions() -> None:
    found = dict(python_packages())
    assert found["fastapi"] and found["invoke"]
    assert os.environ.get("PATH") is not None

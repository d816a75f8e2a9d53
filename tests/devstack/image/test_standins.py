"""The runtime stand-in is composed from dpkg's file lists; checked on a fake root filesystem."""

import os
import tarfile

import pytest

from devstack.image import standins

pytestmark = pytest.mark.unit


@pytest.fixture
def rootfs(tmp_path, monkeypatch):
    root = tmp_path / "rootfs"
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/share/doc/libc6").mkdir(parents=True)
    (root / "etc/ssl/certs").mkdir(parents=True)
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/bin", root / "bin")
    (root / "usr/lib/x86_64-linux-gnu/libc.so.6").write_text("libc")
    (root / "usr/bin/python3.11").write_text("python")
    (root / "usr/bin/bash").write_text("a shell")
    (root / "usr/share/doc/libc6/copyright").write_text("doc")
    (root / "etc/ssl/certs/ca-certificates.crt").write_text("certs")
    info = root / "var/lib/dpkg/info"
    # Paths as dpkg records them: /lib (through the usr-merge link), docs, directories.
    (info / "libc6:amd64.list").write_text(
        "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n/usr/share/doc/libc6/copyright\n"
    )
    (info / "python3.11-minimal.list").write_text("/.\n/usr/bin/python3.11\n")
    (info / "bash.list").write_text("/usr/bin/bash\n")
    monkeypatch.setattr(standins, "RUNTIME_PACKAGES", ("libc6", "python3.11-minimal"))
    return root


def members(path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers()]
        assert len(names) == len(set(names)), "docker import refuses duplicate paths"
        return {m.name: m for m in tar.getmembers()}


def test_runtime_tar_has_the_package_files_through_the_usr_merge(rootfs, tmp_path) -> None:
    out = tmp_path / "rt.tar"
    standins.write_runtime_tar(rootfs, out)
    entries = members(out)
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in entries  # listed as /lib/..., stored under usr
    assert entries["lib"].issym() and entries["lib"].linkname == "usr/lib"
    assert "usr/bin/python3.11" in entries
    assert "etc/ssl/certs/ca-certificates.crt" in entries


def test_runtime_tar_has_no_shell_no_docs_and_a_nonroot_user(rootfs, tmp_path) -> None:
    out = tmp_path / "rt.tar"
    standins.write_runtime_tar(rootfs, out)
    entries = members(out)
    assert "usr/bin/bash" not in entries  # not a runtime package
    assert not any(name.startswith("usr/share/doc") for name in entries)
    assert entries["tmp"].mode == 0o1777
    assert entries["home/nonroot"].uid == 65532
    with tarfile.open(out) as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()
    assert "nonroot:x:65532:65532" in passwd
    assert "/bin/bash" not in passwd and "/bin/sh" not in passwd


def test_missing_package_is_a_clear_error(rootfs) -> None:
    with pytest.raises(FileNotFoundError, match="package nope is not installed"):
        standins.package_files(rootfs, "nope")


def test_tags_follow_the_recipe() -> None:
    tags = standins.standin_tags()
    assert tags.builder.startswith("vaia-standin/python-builder:bookworm-")
    assert tags.runtime.endswith(standins.recipe_hash())


def test_runtime_changes_mirror_distroless_nonroot() -> None:
    assert "USER 65532:65532" in standins.RUNTIME_CHANGES
    assert 'ENTRYPOINT ["/usr/bin/python3.11"]' in standins.RUNTIME_CHANGES

"""Stand-in base images built from Debian packages, for machines that cannot pull any image.

One debootstrap of Debian 12 (bookworm, the release of the upstream bases) gives:
- the builder stand-in (for `debian:12-slim` + Python): the whole root filesystem, with
  python3.11, venv, binutils and ca-certificates; redis-server is in it too, for the Compose
  stand-in of Redis;
- the runtime stand-in (for `gcr.io/distroless/python3-debian12:nonroot`): only the files of the
  packages distroless ships for Python (glibc, libssl, Python and the libraries its standard
  library loads, CA certificates, tzdata, netbase), a `nonroot` user 65532 and no shell.

Images are tagged with a hash of this recipe and reused while it is unchanged. debootstrap needs
root; it is the only place that calls it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.core.errors import MissingToolError
from devstack.image.docker import Docker

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILDER_PACKAGES = (
    "python3.11", "python3.11-venv", "python3-venv", "binutils", "ca-certificates", "netbase",
    "tzdata", "redis-server",
)  # fmt: skip
# What gcr.io/distroless/python3-debian12 carries (its base, cc and python3 layers).
RUNTIME_PACKAGES = (
    "base-files", "netbase", "tzdata", "ca-certificates", "media-types", "libc6", "libgcc-s1",
    "libstdc++6", "libssl3", "zlib1g", "libffi8", "libexpat1", "libcrypt1", "libsqlite3-0",
    "libbz2-1.0", "liblzma5", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3",
    "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0",
    "libkeyutils1", "libcom-err2", "python3.11-minimal", "libpython3.11-minimal",
    "libpython3.11-stdlib",
)  # fmt: skip
# Documentation and translations: distroless leaves them out too.
_SKIP_PREFIXES = (
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/lintian/",
    "usr/share/locale/",
)
NONROOT = 65532
# /etc/passwd lines (no passwords in it: "x" points at a shadow file that does not exist).
USERS_FILE = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUPS_FILE = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
RUNTIME_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    f"USER {NONROOT}:{NONROOT}",
    "WORKDIR /home/nonroot",
    'ENTRYPOINT ["/usr/bin/python3.11"]',
)
BUILDER_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/bin/bash"]',
)


@dataclass(frozen=True)
class StandIns:
    builder: str
    runtime: str


def recipe_hash() -> str:
    """Changes whenever this module changes: the cache key of the stand-in images."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def standin_tags() -> StandIns:
    digest = recipe_hash()
    return StandIns(
        builder=f"vaia-standin/python-builder:{SUITE}-{digest}",
        runtime=f"vaia-standin/python-runtime:{SUITE}-{digest}",
    )


def ensure_base_images(docker: Docker, log: Callable[[str], None] = print) -> StandIns:
    """Build the stand-in bases unless images of this recipe already exist."""
    tags = standin_tags()
    if docker.image_exists(tags.builder) and docker.image_exists(tags.runtime):
        log(f"stand-in bases cached: {tags.builder}, {tags.runtime}")
        return tags
    docker.runner.preflight("debootstrap")
    if os.geteuid() != 0:
        raise MissingToolError(
            "building the stand-in bases runs debootstrap, which needs root (sudo invoke ...)"
        )
    mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
    with tempfile.TemporaryDirectory(
        prefix="vaia-standin-", dir=os.environ.get("VAIA_WORKDIR")
    ) as work:
        rootfs = Path(work) / "rootfs"
        log(f"debootstrap {SUITE} from {mirror} (about 40 s)")
        docker.runner.run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BUILDER_PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        )
        _clean(rootfs)
        log(f"importing {tags.builder}")
        _import_directory(docker, rootfs, Path(work), tags.builder, BUILDER_CHANGES)
        log(f"importing {tags.runtime}")
        runtime_tar = Path(work) / "runtime.tar"
        write_runtime_tar(rootfs, runtime_tar)
        with runtime_tar.open("rb") as stream:
            docker.import_tar(stream, tags.runtime, RUNTIME_CHANGES)
    _remove_stale(docker, tags, log)
    return tags


def _remove_stale(docker: Docker, current: StandIns, log: Callable[[str], None]) -> None:
    """Stand-ins of older recipes only take disk space."""
    listed = docker.run(
        ["images", "--format", "{{.Repository}}:{{.Tag}}", "vaia-standin/*"]
    ).stdout.split()
    stale = [
        tag
        for tag in listed
        if not tag.endswith(recipe_hash()) and tag not in (current.builder, current.runtime)
    ]
    if stale:
        log(f"removing stale stand-ins: {', '.join(stale)}")
        docker.run(["rmi", *stale], check=False)


def _clean(rootfs: Path) -> None:
    for path in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        target = rootfs / path
        if target.exists():
            shutil.rmtree(target)
            target.mkdir(parents=True)


def _import_directory(
    docker: Docker, rootfs: Path, work: Path, tag: str, changes: tuple[str, ...]
) -> None:
    """The whole root filesystem as one layer (numeric owners, links kept as links)."""
    archive = work / f"{tag.rsplit(':', 1)[-1]}.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name, filter=_numeric_owner)
    with archive.open("rb") as stream:
        docker.import_tar(stream, tag, changes)


def _numeric_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info


def package_files(rootfs: Path, package: str) -> list[str]:
    """The files dpkg installed for a package (read from its .list, no chroot needed)."""
    info = rootfs / "var/lib/dpkg/info"
    for name in (f"{package}.list", f"{package}:amd64.list", f"{package}:arm64.list"):
        if (info / name).exists():
            return [
                line.strip().lstrip("/")
                for line in (info / name).read_text().splitlines()
                if line.strip() not in ("", "/.")
            ]
    raise FileNotFoundError(f"package {package} is not installed in {rootfs}")


def _resolve(rootfs: Path, relative: str) -> str:
    """Map a path through the usr-merge links (/lib -> usr/lib, ...) of the root filesystem."""
    first, _, rest = relative.partition("/")
    link = rootfs / first
    if rest and link.is_symlink():
        return f"{os.readlink(link).lstrip('/')}/{rest}"
    return relative


def write_runtime_tar(rootfs: Path, destination: Path) -> None:
    files: set[str] = set()
    for package in RUNTIME_PACKAGES:
        for relative in package_files(rootfs, package):
            resolved = _resolve(rootfs, relative)
            path = rootfs / resolved
            if resolved.startswith(_SKIP_PREFIXES) or not (path.is_file() or path.is_symlink()):
                continue
            files.add(resolved)
    # update-ca-certificates writes the bundle at configure time; no package lists it.
    files.update(str(p.relative_to(rootfs)) for p in (rootfs / "etc/ssl/certs").iterdir())
    with tarfile.open(destination, "w") as raw:
        tar = _UniqueTar(raw)
        for top in ("bin", "sbin", "lib", "lib64"):  # usr-merge links, as in Debian 12
            if (rootfs / top).is_symlink():
                tar.add(rootfs / top, arcname=top, recursive=False)
        _add_dir(tar, "tmp", 0o1777)
        _add_dir(tar, "root", 0o700)
        _add_dir(tar, "home", 0o755)
        _add_dir(tar, "home/nonroot", 0o700, owner=NONROOT)
        parents: set[str] = set()
        for relative in files:
            parent = Path(relative).parent
            while str(parent) != ".":
                parents.add(str(parent))
                parent = parent.parent
        for directory in sorted(parents):
            _add_dir(tar, directory, 0o755)
        # Ours, not the packages': a nonroot user, and no shell for anyone.
        _add_file(tar, "etc/passwd", USERS_FILE)
        _add_file(tar, "etc/group", GROUPS_FILE)
        _add_file(tar, "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
        for relative in sorted(files):
            tar.add(rootfs / relative, arcname=relative, recursive=False)


class _UniqueTar:
    """Docker refuses a layer tar with a path twice; the first entry of a path wins."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.names: set[str] = set()

    def add(self, path: Path, arcname: str, recursive: bool = False) -> None:
        if arcname not in self.names:
            self.names.add(arcname)
            self.tar.add(path, arcname=arcname, recursive=recursive)

    def addfile(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        if info.name not in self.names:
            self.names.add(info.name)
            self.tar.addfile(info, data)


def _add_dir(tar: _UniqueTar, name: str, mode: int, owner: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, owner, owner
    tar.addfile(info)


def _add_file(tar: _UniqueTar, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))

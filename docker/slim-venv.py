"""Slim a virtualenv for the runtime image, in place, then prove every dependency still imports.

Run by the Dockerfile's `slim` stage with the venv's own interpreter. What goes, and why:
- pip, setuptools, wheel: the runtime never installs anything.
- `tests`/`test` folders, type stubs, C headers and sources: never imported at run time.
- debug symbols of extension modules, but only of those that auditwheel did not patch: stripping
  a patchelf-edited library breaks it ("ELF load command address/offset not page-aligned").
- third-party sources: the code ships as bytecode only (legacy `module.pyc` beside where the .py
  was). Start-up needs bytecode (without it, importing the service takes ~1.5 s longer on a
  read-only filesystem), and shipping both sources and bytecode would not fit the size budget.
  The cost: tracebacks inside third-party code show no source lines. Our own code keeps both.
"""

from __future__ import annotations

import compileall
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

REMOVE_DISTRIBUTIONS = ("pip", "setuptools", "wheel")
REMOVE_TOP_LEVEL = ("_distutils_hack", "pkg_resources", "distutils-precedence.pth")
REMOVE_DIRS = ("tests", "test")
REMOVE_SUFFIXES = (".pyi", ".pxd", ".pyx", ".c", ".h", ".cpp", ".hpp", ".ipynb")
# Every runtime dependency the agent uses, imported after slimming: a broken prune fails the build.
MUST_IMPORT = (
    "google.genai",
    "google.genai.types",
    "chromadb",
    "chromadb.api.fastapi",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "redis.asyncio",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "tenacity",
    "httpx",
    "cachetools",
    "numpy",
    "grpc",
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "yaml",
    "jsonschema",
    "orjson",
    "cryptography.hazmat.bindings._rust",
    "google.auth",
)


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def site_packages(venv: Path) -> Path:
    [site] = list(venv.glob("lib/python3*/site-packages"))
    return site


def remove_distributions(site: Path, venv: Path) -> None:
    for name in REMOVE_DISTRIBUTIONS:
        shutil.rmtree(site / name, ignore_errors=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)
        for script in venv.glob(f"bin/{name}*"):
            script.unlink()
    for name in REMOVE_TOP_LEVEL:
        target = site / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def remove_unused_files(site: Path) -> None:
    for directory in sorted(site.rglob("*"), reverse=True):
        if directory.is_dir() and directory.name in REMOVE_DIRS and directory.exists():
            shutil.rmtree(directory)
    for file in site.rglob("*"):
        if file.is_file() and file.suffix in REMOVE_SUFFIXES:
            file.unlink()


def patched_by_auditwheel(library: Path) -> bool:
    if any(part.endswith(".libs") for part in library.parts):
        return True
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True).stdout
    return "RPATH" in dynamic or "RUNPATH" in dynamic


def strip_extensions(site: Path) -> None:
    for library in site.rglob("*.so*"):
        if library.is_file() and not library.is_symlink() and not patched_by_auditwheel(library):
            subprocess.run(["strip", "--strip-unneeded", str(library)], check=True)


def bytecode_only(site: Path) -> None:
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)
    # Absolute paths in the code objects, and no timestamp checks (there is no source to check).
    ok = compileall.compile_dir(
        str(site),
        quiet=1,
        legacy=True,
        workers=0,
        invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit("compileall failed")
    for source in site.rglob("*.py"):
        source.unlink()


def check_imports() -> None:
    for module in MUST_IMPORT:
        importlib.import_module(module)


def main(venv: Path) -> None:
    site = site_packages(venv)
    before = size(venv)
    remove_distributions(site, venv)
    remove_unused_files(site)
    strip_extensions(site)
    bytecode_only(site)
    check_imports()
    print(
        f"slimmed {venv}: {before / 1e6:.1f} MB -> {size(venv) / 1e6:.1f} MB; "
        f"{len(MUST_IMPORT)} modules import"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))

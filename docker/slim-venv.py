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
- docstrings in that bytecode (about 17% of it): what `python -OO` drops, but asserts are kept
  (the code is compiled as it is run, only the docstring statements are taken out of the syntax
  tree first). Libraries read as data none of the docstrings the agent needs; pycparser keeps its
  own anyway (parsers generated from docstrings are its family's habit).
- build and test artifacts the runtime never loads: static libraries (`*.a`), `.proto` sources
  (the `_pb2` modules carry their descriptors), `benchmarks` folders, numpy's test-only extension
  modules (`_*_tests`, `_simd`: loaded by its test suite alone) and its build tools
  (`numpy.distutils`, `numpy.f2py`: they generate and compile extension modules), and the
  `RECORD` file lists that only installers read.
Libraries that auditwheel patched keep their symbols: stripping them makes them unloadable.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import shutil
import subprocess
import sys
from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]
from pathlib import Path

REMOVE_DISTRIBUTIONS = ("pip", "setuptools", "wheel")
REMOVE_TOP_LEVEL = ("_distutils_hack", "pkg_resources", "distutils-precedence.pth")
REMOVE_DIRS = ("tests", "test", "benchmarks")
REMOVE_SUFFIXES = (".pyi", ".pxd", ".pyx", ".c", ".h", ".cpp", ".hpp", ".ipynb", ".a", ".proto")
REMOVE_PATHS = (
    "numpy/distutils",
    "numpy/f2py",
    "numpy/conftest.py",
    "numpy/_core/_multiarray_tests.*.so",
    "numpy/_core/_rational_tests.*.so",
    "numpy/_core/_umath_tests.*.so",
    "numpy/_core/_struct_ufunc_tests.*.so",
    "numpy/_core/_operand_flag_tests.*.so",
    "numpy/_core/_simd.*.so",
    "*.dist-info/RECORD",
)
KEEP_DOCSTRINGS = ("pycparser",)
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
    "httptools",
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
    for pattern in REMOVE_PATHS:
        for path in site.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def patched_by_auditwheel(library: Path) -> bool:
    if any(part.endswith(".libs") for part in library.parts):
        return True
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True).stdout
    return "RPATH" in dynamic or "RUNPATH" in dynamic


def strip_extensions(site: Path) -> None:
    for library in site.rglob("*.so*"):
        if library.is_file() and not library.is_symlink() and not patched_by_auditwheel(library):
            subprocess.run(["strip", "--strip-unneeded", str(library)], check=True)


class _DropDocstrings(ast.NodeTransformer):
    """Take the docstring statement out of every module, class and function body."""

    def _drop(self, node: ast.AST) -> ast.AST:
        self.generic_visit(node)
        body = node.body  # type: ignore[attr-defined]
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            first = body.pop(0)
            if not body:  # a body of only a docstring: `pass`, on the docstring's line
                body.append(ast.copy_location(ast.Pass(), first))
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _drop


def compile_without_docstrings(source: Path, keep_docstrings: bool) -> bytes:
    data = source.read_bytes()
    tree = ast.parse(data, filename=str(source))
    if not keep_docstrings:
        tree = _DropDocstrings().visit(tree)
    code = compile(tree, str(source), "exec", dont_inherit=True, optimize=0)
    # No timestamp checks: there is no source to check against.
    return bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False))


def bytecode_only(site: Path) -> None:
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)
    for source in sorted(site.rglob("*.py")):
        top = source.relative_to(site).parts[0]
        try:
            pyc = compile_without_docstrings(source, top in KEEP_DOCSTRINGS)
        except SyntaxError as exc:  # a file no import can load either (templates, py2 leftovers)
            print(f"not compiled: {source}: {exc}")
        else:
            source.with_suffix(".pyc").write_bytes(pyc)  # legacy layout: beside the source
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

"""Evaluate a Tiltfile the way `tilt up` loads it, without Tilt: a real Starlark interpreter
(starlark-pyo3) with Tilt's builtins bound to their documented signatures (`tilt_api`).

Builtins whose result feeds what Tilt deploys are implemented for real: `kustomize` renders the
directory, the YAML codecs decode and encode, `os.getenv` reads the given environment,
`k8s_context` answers the given context, `fail` stops the load. `local` runs in a `World` the
caller supplies (the checks answer from a model of the cluster, never from a real one).
Everything else is recorded, so the replay (`tilt_engine`) sees exactly what the Tiltfile
evaluates to.

A Tilt Blob is modelled as an opaque value for what `kustomize`, `read_file`, `blob` and
`encode_yaml_stream` return (so `k8s_yaml(blob)` is YAML and `k8s_yaml("path")` a file, as in
Tilt); `local` returns a plain string, which is what `str(local(...))` gives in Tilt.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark as sl
import yaml

from devstack.verify import tilt_api

Obj = dict[str, Any]
World = Callable[[str], str]  # a `local` command -> its stdout; raises LocalCommandFailed
Args = dict[str, Any]  # a builtin call's bound arguments, by parameter name


class TiltfileError(RuntimeError):
    """The Tiltfile does not load: a bad call, a failed `local`, or `fail()`."""


class TiltfileFailed(TiltfileError):
    """The Tiltfile called `fail(msg)`; `message` is what Tilt shows."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LocalCommandFailed(RuntimeError):
    """Raised by a World for a command that exits non-zero (Tilt then stops the load)."""


@dataclass(frozen=True)
class Blob:
    text: str


@dataclass(frozen=True)
class Call:
    name: str
    args: Args


@dataclass
class TiltfileModel:
    """What the Tiltfile asked Tilt to do, in call order."""

    calls: list[Call] = field(default_factory=list)
    entities: list[Obj] = field(default_factory=list)  # everything given to k8s_yaml, in order
    local_commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    @property
    def max_parallel_updates(self) -> int:
        chosen = [
            c.args["max_parallel_updates"]
            for c in self.called("update_settings")
            if c.args.get("max_parallel_updates") is not None
        ]
        return int(chosen[-1]) if chosen else 3  # Tilt's default (api: update_settings)


def _blob(text: str) -> Any:
    return sl.OpaquePythonObject(Blob(text))


def _documents(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


class _Evaluator:
    """Tilt's builtins; each implemented one takes its call's bound arguments."""

    def __init__(
        self,
        root: Path,
        context: str,
        environ: Mapping[str, str],
        world: World,
        render: Callable[[Path], str],
    ) -> None:
        self.root = root
        self.context = context
        self.environ = dict(environ)
        self.world = world
        self.render = render
        self.model = TiltfileModel()
        self.raised: TiltfileError | None = None  # Starlark keeps only an exception's text

    # --- what Tilt really does -------------------------------------------------------------------

    def kustomize(self, a: Args) -> Any:
        return _blob(self.render(self.root / a["pathToDir"]))

    def k8s_yaml(self, a: Args) -> None:
        items = a["yaml"] if isinstance(a["yaml"], list) else [a["yaml"]]
        for item in items:
            if isinstance(item, Blob):
                self.model.entities += _documents(item.text)
            elif isinstance(item, str):  # a path, as in Tilt
                self.model.entities += _documents((self.root / item).read_text())
            else:
                raise TiltfileError(f"k8s_yaml: a Blob or a path, not {type(item).__name__}")

    def decode_yaml_stream(self, a: Args) -> list[Obj]:
        value = a["yaml"]
        return _documents(value.text if isinstance(value, Blob) else str(value))

    def encode_yaml_stream(self, a: Args) -> Any:
        return _blob(yaml.safe_dump_all(a["objs"], sort_keys=False))

    def read_file(self, a: Args) -> Any:
        path = self.root / a["file_path"]
        if not path.exists() and a.get("default") is not None:
            return _blob(str(a["default"]))
        return _blob(path.read_text())

    def blob(self, a: Args) -> Any:
        return _blob(str(a["contents"]))

    def local(self, a: Args) -> str:
        command = a["command"]
        line = command if isinstance(command, str) else " ".join(command)
        self.model.local_commands.append(line)
        try:
            return self.world(line)
        except LocalCommandFailed as exc:
            raise TiltfileError(f"local({line!r}) failed: {exc}") from exc

    def k8s_context(self, a: Args) -> str:
        return self.context

    def k8s_namespace(self, a: Args) -> str:
        return "default"

    def fail(self, a: Args) -> None:
        raise TiltfileFailed(str(a["msg"]))

    def warn(self, a: Args) -> None:
        self.model.warnings.append(str(a["msg"]))

    def getenv(self, a: Args) -> Any:
        return self.environ.get(a["key"], a.get("default"))

    def exists(self, a: Args) -> bool:
        return (self.root / a["path"]).exists()

    def join(self, a: Args) -> str:
        return os.path.join(a["path"], *a.get("paths", ()))

    def getcwd(self, a: Args) -> str:
        return str(self.root)

    # --- binding ---------------------------------------------------------------------------------

    def builtin(self, name: str) -> Callable[..., Any]:
        signature = inspect.signature(getattr(tilt_api, name))
        implementation: Callable[[Args], Any] | None = getattr(self, name, None)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                if name in tilt_api.DEPRECATED:
                    raise TiltfileError(f"{name}() is deprecated for Kubernetes resources")
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError as exc:
                    raise TiltfileError(f"{name}(): {exc}") from exc
                self.model.calls.append(Call(name, dict(bound.arguments)))
                if implementation is not None:
                    return implementation(dict(bound.arguments))
                return {"builtin": name, **bound.arguments}
            except TiltfileError as exc:
                self.raised = exc
                raise

        return call


# Tilt's `os` and `os.path` modules, built from the recorded builtins.
_PRELUDE = (
    "os = struct(getcwd=_os_getcwd, getenv=_os_getenv, putenv=_os_putenv, unsetenv=_os_unsetenv,"
    " path=struct(abspath=_os_abspath, relpath=_os_relpath, basename=_os_basename,"
    " dirname=_os_dirname, exists=_os_exists, join=_os_join, realpath=_os_realpath))"
)


def evaluate(
    tiltfile: Path,
    *,
    context: str,
    environ: Mapping[str, str],
    world: World,
    render: Callable[[Path], str],
    source: str | None = None,
) -> TiltfileModel:
    """Load `tiltfile` (or `source`, read as if it were that file) as `tilt up` would.

    Raises TiltfileFailed when the Tiltfile calls fail(), TiltfileError for any other load error.
    """
    evaluator = _Evaluator(tiltfile.parent, context, environ, world, render)
    module = sl.Module()
    for name in tilt_api.BUILTINS:
        module.add_callable(name, evaluator.builtin(name))
    for name in (*tilt_api.OS, *tilt_api.OS_PATH):
        module.add_callable(f"_os_{name}", evaluator.builtin(name))
    for constant in tilt_api.TRIGGER_MODES:
        module[constant] = constant
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType, sl.LibraryExtension.Print])
    dialect = sl.Dialect.extended()
    text = source if source is not None else tiltfile.read_text()
    try:
        sl.eval(module, sl.parse("<tilt prelude>", _PRELUDE, dialect), globals_)
        sl.eval(module, sl.parse(tiltfile.name, text, dialect), globals_)
    except sl.StarlarkError as exc:
        raise evaluator.raised or TiltfileError(str(exc)) from exc
    return evaluator.model

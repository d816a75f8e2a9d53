"""The manifests as kubectl sees them: `kubectl kustomize` of an overlay, in kustomize's order
(Namespace first), which is also the order `kubectl apply` sends them in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from devstack.core.errors import DevstackError
from devstack.core.names import IMAGE
from devstack.core.runner import Runner

Obj = dict[str, Any]  # one rendered object, as YAML loads it
OVERLAYS = ("dev", "ci", "prod")


class RenderError(DevstackError):
    """kustomize could not render an overlay; the message carries its error."""


def render_dir(path: Path, runner: Runner | None = None) -> str:
    """`kubectl kustomize <path>`: the YAML stream."""
    done = (runner or Runner()).run("kubectl", "kustomize", str(path), check=False, timeout=120)
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {path} failed: {done.stderr.strip()[-1000:]}")
    return done.stdout


def render(root: Path, overlay: str, runner: Runner | None = None) -> list[Obj]:
    """An overlay's objects, in stream order."""
    if overlay not in OVERLAYS:
        raise RenderError(f"unknown overlay {overlay!r}: one of {', '.join(OVERLAYS)}")
    text = render_dir(root / "k8s" / "overlays" / overlay, runner)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def deployed_images(root: Path) -> list[str]:
    """Every image the overlays and Compose run, but the agent's own (built here)."""
    found: list[str] = []
    for overlay in OVERLAYS:
        for obj in render(root, overlay):
            spec = obj.get("spec", {}).get("template", {}).get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                found.append(container["image"])
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    for service in compose.get("services", {}).values():
        found.append(_compose_default(service["image"]))
    return [image for image in dict.fromkeys(found) if not _is_agent(image)]


def _compose_default(value: str) -> str:
    """`${VAR:-default}` -> default (Compose's own substitution, for the one form we use)."""
    if value.startswith("${") and ":-" in value and value.endswith("}"):
        return value[2:-1].split(":-", 1)[1]
    return value


def _is_agent(image: str) -> bool:
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return name == IMAGE


# --- the rendered objects, read (the one set of accessors: deploy, verify and the tests) ---

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def by_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def find(objs: Iterable[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in objs if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def workloads(objs: Iterable[Obj]) -> Iterator[Obj]:
    return (o for o in objs if o.get("kind") in WORKLOAD_KINDS)


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels

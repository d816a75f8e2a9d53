"""`invoke verify`: every offline check of what this repository deploys, as one table. The
static test tier calls the same functions (tests/devstack/verify/)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from devstack.cluster.render import OVERLAYS, Obj, render
from devstack.core.errors import DevstackError
from devstack.core.names import IMAGE
from devstack.release.trivy import config_scan, findings
from devstack.verify import manifests as m
from devstack.verify import replays
from devstack.verify.kind_config import contract_problems, problems
from devstack.verify.policy import checkov_problems
from devstack.verify.tiltfile import TiltfileError

KUBERNETES_VERSION = "1.32.0"  # kind's node image of this era, and the namespace's enforce-version
STORES = {"redis": 6379, "chromadb": 8000}


@dataclass(frozen=True)
class Check:
    subject: str  # what was checked: an overlay, the Tiltfile, kind-config.yaml
    name: str  # which check
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


@cache
def agent_routes() -> frozenset[str]:
    from agent.app import create_app
    from agent.config import Settings

    return frozenset(create_app(Settings(_env_file=None)).openapi()["paths"])


def schema_problems(objs: list[Obj]) -> list[str]:
    """`kubernetes-validate --strict` against the cluster version kind runs."""
    import kubernetes_validate

    found = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(map(str, exc.path))
            found.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {where}")
    return found


def trivy_problems(objs: list[Obj]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifests.yaml"
        path.write_text(yaml.safe_dump_all(objs))
        return [f"{f.severity} {f.id}: {f.title}" for f in findings(config_scan(path))]


def overlay_checks(objs: list[Obj]) -> Iterator[tuple[str, Callable[[], list[str]]]]:
    yield "schema (kubernetes-validate --strict, 1.32)", lambda: schema_problems(objs)
    yield (
        "Services select pods, target ports exist",
        lambda: [
            *m.check_service_selectors(objs),
            *m.check_target_ports(objs),
        ],
    )
    yield (
        "probes hit declared ports and app routes",
        lambda: m.check_probes(objs, set(agent_routes()), IMAGE),
    )
    yield "HPA target, CPU requests", lambda: m.check_hpa(objs)
    yield "ConfigMap and Secret references", lambda: m.check_config_refs(objs)
    yield "Pod Security restricted", lambda: m.check_restricted(objs)
    yield (
        "NetworkPolicy: only the agent reaches the stores",
        lambda: m.check_network_policy(objs, IMAGE, STORES),
    )
    yield "trivy config: no HIGH or CRITICAL", lambda: trivy_problems(objs)
    yield "checkov: every finding fixed or skipped with a reason", lambda: checkov_problems(objs)


def _guarded(check: Callable[[], list[str]]) -> list[str]:
    """A check that cannot run is a failed check, never a silent pass."""
    try:
        return check()
    except (DevstackError, TiltfileError) as exc:
        return [f"could not check: {exc}"]


SLOW_TOOLS = ("trivy", "checkov")  # `invoke verify --no-scanners` skips them


def run_all(root: Path, with_scanners: bool = True) -> list[Check]:
    checks: list[Check] = []
    for overlay in OVERLAYS:
        subject = f"k8s/overlays/{overlay}"
        try:
            objs = render(root, overlay)
        except DevstackError as exc:
            checks.append(Check(subject, "renders (kubectl kustomize)", [str(exc)]))
            continue
        checks.append(Check(subject, "renders (kubectl kustomize)", []))
        for name, check in overlay_checks(objs):
            if with_scanners or not name.startswith(SLOW_TOOLS):
                checks.append(Check(subject, name, _guarded(check)))
        checks.append(
            Check(
                subject,
                "invoke deploy: comes up on an empty cluster",
                _guarded(lambda overlay=overlay: replays.deploy(root, overlay)),  # type: ignore[misc]
            )
        )
    checks.append(
        Check(
            "Tiltfile", "a first tilt up comes up", _guarded(lambda: replays.tilt_up(root).problems)
        )
    )
    config = yaml.safe_load((root / "kind-config.yaml").read_text())
    checks.append(
        Check(
            "kind-config.yaml",
            "kind v1alpha4 fields, the vaia cluster, certs.d",
            [*problems(config), *contract_problems(config)],
        )
    )
    return checks

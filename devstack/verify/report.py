"""`invoke verify`: every check of what this repository deploys, as one table: offline (the
static test tier calls the same functions), and with `--server` dry-run against a real API
server too (devstack/verify/server.py). What a real component decides when one can run (the
Tiltfile: the real Tilt; the order of a deploy, Pod Security: the real API server) is not
modelled here: the cluster tier runs them (docs/testing.md)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from devstack.cluster.cli import ClusterCli
from devstack.cluster.kind_config import contract_problems
from devstack.cluster.render import OVERLAYS, Obj, render
from devstack.core.errors import DevstackError
from devstack.core.names import IMAGE, KUBERNETES_MINOR
from devstack.release.trivy import config_scan, findings
from devstack.verify import manifests as m
from devstack.verify.policy import checkov_problems
from devstack.verify.server import dry_run_problems

STORES = {"redis": 6379, "chromadb": 8000}
SCHEMA_VERSION = f"{KUBERNETES_MINOR}.0"  # kubernetes-validate has one schema per minor


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
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
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
    yield (
        f"schema (kubernetes-validate --strict, {KUBERNETES_MINOR})",
        lambda: schema_problems(objs),
    )
    yield (
        "Services select pods, target ports and Ingress backends exist",
        lambda: [
            *m.check_service_selectors(objs),
            *m.check_target_ports(objs),
            *m.check_ingress_backends(objs),
        ],
    )
    yield (
        "probes hit declared ports and app routes",
        lambda: m.check_probes(objs, set(agent_routes()), IMAGE),
    )
    yield "HPA target, CPU requests", lambda: m.check_hpa(objs)
    yield "ConfigMap and Secret references", lambda: m.check_config_refs(objs)
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
    except DevstackError as exc:
        return [f"could not check: {exc}"]


SLOW_TOOLS = ("trivy", "checkov")  # `invoke verify --no-scanners` skips them


def server_checks(cli: ClusterCli, root: Path, overlay: str, subject: str) -> list[Check]:
    """One server-side dry run of what `invoke deploy` applies: what the server refuses, and
    what it warns about (Pod Security's `would violate`, deprecated APIs)."""
    where = f"on {cli.context}"
    try:
        errors, warnings = dry_run_problems(cli, root, overlay)
    except DevstackError as exc:
        errors, warnings = [f"could not check: {exc}"], []
    return [
        Check(subject, f"the API server accepts it (server-side dry run {where})", errors),
        Check(
            subject, f"no warning from the API server (Pod Security restricted) {where}", warnings
        ),
    ]


def run_all(
    root: Path, with_scanners: bool = True, server: ClusterCli | None = None
) -> list[Check]:
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
        if server is not None:
            checks.extend(server_checks(server, root, overlay, subject))
    config = yaml.safe_load((root / "kind-config.yaml").read_text())
    checks.append(
        Check(
            "kind-config.yaml",
            "the vaia cluster, certs.d, loopback only (kind checks its own fields)",
            contract_problems(config),
        )
    )
    return checks

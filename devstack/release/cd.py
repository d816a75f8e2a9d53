"""`invoke cd`: test -> build -> scan -> push -> deploy -> smoke test, each a hard gate. Every
stage calls the same function its own task calls (`invoke build`, `scan`, `push`, `deploy`); the
image that `build` made and the reference that `push` printed reach the later stages through
the pipeline's outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.cluster.cli import ClusterCli
from devstack.cluster.deploy import deploy
from devstack.cluster.kind import port_forward
from devstack.core.names import IMAGE
from devstack.core.net import free_port
from devstack.image.build import build_image
from devstack.image.compose import standins_by_upstream_name
from devstack.image.docker import Docker
from devstack.release.pipeline import Produced, Stage
from devstack.release.registry import push
from devstack.release.scan import ScanOptions, scan_images, targets
from devstack.release.smoke import smoke_test

Log = Callable[[str], None]


@dataclass(frozen=True)
class CdPlan:
    root: Path
    overlay: str
    registry: str
    offline: bool
    scan: ScanOptions
    test_marker: str


def cd_stages(
    plan: CdPlan,
    cli: ClusterCli,
    run_tests: Callable[[str], None],
    docker: Callable[[], Docker] = Docker,
    log: Log = print,
) -> list[Stage]:
    def test(_: Mapping[str, str]) -> Produced:
        run_tests(plan.test_marker)
        return Produced(f"pytest -m '{plan.test_marker}'")

    def build(_: Mapping[str, str]) -> Produced:
        result = build_image(docker(), plan.root, offline=plan.offline, log=log)
        detail = f"{', '.join(result.tags)}, {result.size_bytes / 1e6:.1f} MB"
        return Produced(detail, " ".join(result.tags))

    def scan(outputs: Mapping[str, str]) -> Produced:
        client = docker()
        standins = standins_by_upstream_name(client, log) if plan.scan.offline else {}
        images = targets(outputs["build"].split()[0], plan.root, standins)
        results = scan_images(client, plan.root, images, plan.scan, log=log)
        return Produced(f"{len(results)} images, no blocking finding")

    def push_stage(outputs: Mapping[str, str]) -> Produced:
        ref = push(docker(), plan.root, outputs["build"].split(), plan.registry)
        return Produced(ref, ref)

    def deploy_stage(outputs: Mapping[str, str]) -> Produced:
        deploy(cli, plan.root, plan.overlay, outputs["push"], log=log)
        return Produced(f"overlay {plan.overlay} on {cli.context}")

    def smoke(_: Mapping[str, str]) -> Produced:
        with port_forward(cli, IMAGE, free_port()) as url:
            return Produced(smoke_test(url))

    deploy_line = f"invoke deploy --overlay {plan.overlay} --context {cli.context}"
    return [
        Stage("test", f"pytest -m '{plan.test_marker}'", test),
        Stage("build", "invoke build" + (" --offline" if plan.offline else ""), build),
        Stage(
            "scan",
            "invoke scan" + (" --offline" if plan.offline else "") + " (Trivy gate, every image)",
            scan,
        ),
        Stage("push", f"invoke push --registry {plan.registry}", push_stage),
        Stage("deploy", deploy_line, deploy_stage),
        Stage("smoke", "GET /ready, POST /v1/agent/infer through a port-forward", smoke),
    ]

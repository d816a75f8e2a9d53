"""The CD chain: `invoke scan`, `push`, `deploy`, `rollback`, and `cd`, which runs them in order."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from invoke import Context

from devstack.cluster.deploy import check_context, expected_context
from devstack.cluster.deploy import deploy as deploy_overlay
from devstack.cluster.deploy import rollback as rollback_rollout
from devstack.cluster.kind import ClusterCli
from devstack.core.console import console, status, table
from devstack.core.errors import DevstackError
from devstack.core.names import CONTEXT
from devstack.image.build import git_state, image_tags
from devstack.image.docker import Docker
from devstack.release.cd import CdPlan, cd_stages
from devstack.release.pipeline import run_stages, succeeded
from devstack.release.registry import DEFAULT_REGISTRY
from devstack.release.registry import push as push_image
from devstack.release.scan import ScanOptions, scan_image
from tasks._base import PY, ROOT, runner, task
from tasks.image import docker

SCAN_HELP = {
    "image": "image to scan (default: this commit's vaia-agent:sha-... tag)",
    "vuln_report": "a Trivy JSON report of vulnerabilities, made where the DB is reachable",
    "db_repository": "a mirror of the Trivy vulnerability DB (OCI repository)",
    "cache_dir": "a Trivy cache directory that already holds the DB",
    "skip_db_update": "use the DB in --cache-dir as it is",
}


def commit_tags(client: Docker, image: str) -> list[str]:
    """The image to act on: the given one, or this commit's tags (`vaia-agent:sha-...`, and
    `<semver>` on a release), the sha tag first."""
    if image:
        return [image]
    tags = image_tags(git_state(ROOT, client.runner))
    if not client.image_exists(tags[0]):
        raise DevstackError(f"{tags[0]} does not exist: run `invoke build` first (or pass --image)")
    return tags


def registry_or_default(registry: str) -> str:
    return registry or os.environ.get("REGISTRY", DEFAULT_REGISTRY)


@task(help=SCAN_HELP)
def scan(
    c: Context,
    image: str = "",
    vuln_report: str = "",
    db_repository: str = "",
    cache_dir: str = "",
    skip_db_update: bool = False,
) -> None:
    """The Trivy gate: vulnerabilities, misconfigurations and secrets; fails closed."""
    client = docker()
    options = ScanOptions(
        vuln_report=Path(vuln_report) if vuln_report else None,
        db_repository=db_repository or None,
        cache_dir=Path(cache_dir) if cache_dir else None,
        skip_db_update=skip_db_update,
    )
    scan_image(client, ROOT, commit_tags(client, image)[0], options, log=console.print)


@task(
    help={
        "image": "image to push (default: every tag of this commit: sha-..., and the version "
        "on a release tag)",
        "registry": "default $REGISTRY, else localhost:5001",
    }
)
def push(c: Context, image: str = "", registry: str = "") -> None:
    """Push a scanned image (refused without a passed scan); prints the reference by digest."""
    client = docker()
    ref = push_image(client, ROOT, commit_tags(client, image), registry_or_default(registry))
    console.print(f"pushed: {ref}", soft_wrap=True)  # one line: the CD workflow reads it


def cluster_cli(context: str, overlay: str | None = None) -> ClusterCli:
    """kubectl for `context`, else for the context the overlay is meant for."""
    chosen = context or (expected_context(overlay) if overlay else None) or CONTEXT
    return ClusterCli(runner(), chosen)


@task(
    help={
        "image": "the immutable reference to deploy (a sha tag, a version or a digest)",
        "overlay": "dev, ci or prod",
        "context": "kube context (default: the one the overlay is meant for)",
        "force": "deploy even to a context the overlay is not meant for",
        "timeout": "rollout timeout (default 180s)",
        "allow_offline": "deploy prod without $GEMINI_API_KEY (it then answers offline)",
        "pull_secret": "add an image pull Secret from $REGISTRY_USERNAME and $REGISTRY_PASSWORD "
        "(a private registry)",
    }
)
def deploy(
    c: Context,
    image: str,
    overlay: str = "ci",
    context: str = "",
    force: bool = False,
    timeout: str = "180s",
    allow_offline: bool = False,
    pull_secret: bool = False,
) -> None:
    """Apply an overlay with the image pinned; wait for the rollout; undo it when it fails."""
    cli = cluster_cli(context, overlay)
    cli.runner.preflight("kubectl")
    deploy_overlay(
        cli,
        ROOT,
        overlay,
        image,
        force=force,
        timeout=timeout,
        allow_offline=allow_offline,
        pull_secret=pull_secret,
        log=console.print,
    )


@task(
    help={
        "context": "kube context (default kind-vaia)",
        "to_revision": "a revision from `rollout history`",
    }
)
def rollback(c: Context, context: str = "", to_revision: int = 0) -> None:
    """Undo the agent's last rollout (or go back to --to-revision) and wait for it."""
    cli = cluster_cli(context)
    cli.runner.preflight("kubectl")
    rollback_rollout(cli, to_revision or None)


@task(
    help={
        "overlay": "where to deploy: dev, ci or prod",
        "registry": "where to push (default $REGISTRY or localhost:5001)",
        "offline": "build on the stand-in bases",
        "vuln_report": "a Trivy vulnerability report for the scan gate (see invoke --help scan)",
        "test_marker": "the pytest tiers of the test stage (default: unit or static)",
        "context": "kube context for deploy and smoke test",
        "dry_run": "print the plan; run nothing",
    }
)
def cd(
    c: Context,
    overlay: str = "ci",
    registry: str = "",
    offline: bool = False,
    vuln_report: str = "",
    test_marker: str = "unit or static",
    context: str = "",
    dry_run: bool = False,
) -> None:
    """test -> build -> scan -> push -> deploy -> smoke test, each a hard gate, then a summary."""
    cli = cluster_cli(context, overlay)
    check_context(overlay, cli.context, force=False)  # before anything runs, not at the deploy
    plan = CdPlan(
        root=ROOT,
        overlay=overlay,
        registry=registry_or_default(registry),
        offline=offline,
        scan=ScanOptions(vuln_report=Path(vuln_report) if vuln_report else None),
        test_marker=test_marker,
    )

    def run_tests(marker: str) -> None:
        c.run(f"{PY} -m pytest -q -m {shlex.quote(marker)}", pty=False)

    stages = cd_stages(plan, cli, run_tests, docker, console.print)
    results = run_stages(stages, dry_run=dry_run, log=console.print)
    colors = {"planned": "cyan", "not run": "dim"}
    rows = [
        (
            r.name,
            f"[{colors[r.outcome]}]{r.outcome}[/]" if r.outcome in colors else status(r.outcome),
            f"{r.seconds:.1f} s",
            r.detail,
        )
        for r in results
    ]
    title = "cd" + (" (dry run: nothing was run)" if dry_run else "")
    console.print(table(title, ("stage", "result", "duration", "detail"), rows))
    if not succeeded(results):
        raise DevstackError("cd stopped at a failed gate")

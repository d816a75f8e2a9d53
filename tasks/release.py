"""The CD chain: `invoke scan`, `push`, `deploy`, `rollback`, and `cd`, which runs them in order."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from invoke.context import Context

from devstack.cluster.cli import ClusterCli
from devstack.cluster.deploy import check_context, expected_context
from devstack.cluster.deploy import deploy as deploy_overlay
from devstack.cluster.deploy import rollback as rollback_rollout
from devstack.core.console import console, status, table
from devstack.core.errors import DevstackError
from devstack.core.names import CONTEXT
from devstack.image.build import git_state, image_tags
from devstack.image.compose import standins_by_upstream_name
from devstack.image.docker import Docker
from devstack.release.cd import CdPlan, cd_stages
from devstack.release.pipeline import run_stages, succeeded
from devstack.release.registry import DEFAULT_REGISTRY
from devstack.release.registry import push as push_image
from devstack.release.scan import ScanOptions, scan_images, targets
from devstack.release.vulndb import build as build_vulndb
from devstack.release.vulndb import default_advisories_dir, default_cache_dir
from tasks._base import PY, ROOT, runner, task
from tasks.image import docker

SCAN_HELP = {
    "image": "the agent image to scan (default: this commit's vaia-agent:sha-... tag); the "
    "Redis, Chroma and proxy images the manifests and Compose name are scanned with it",
    "offline": "read the database `invoke vulndb` built and scan the stand-ins of the upstream "
    "images (nothing is pulled)",
    "db_repository": "a mirror of the Trivy vulnerability DB (OCI repository)",
    "cache_dir": "a Trivy cache directory that holds (or will hold) the DB",
    "skip_db_update": "use the DB in --cache-dir as it is",
    "max_db_age_days": "refuse a database older than this (default: $VAIA_MAX_DB_AGE_DAYS, else "
    "7 in CI, else no limit; 0: no limit)",
}


def scan_options(
    offline: bool, db_repository: str, cache_dir: str, skip_db_update: bool, max_db_age_days: int
) -> ScanOptions:
    return ScanOptions(
        db_repository=db_repository or None,
        cache_dir=Path(cache_dir) if cache_dir else None,
        skip_db_update=skip_db_update,
        max_db_age_days=None if max_db_age_days < 0 else max_db_age_days,
        offline=offline,
    )


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
    offline: bool = False,
    db_repository: str = "",
    cache_dir: str = "",
    skip_db_update: bool = False,
    max_db_age_days: int = -1,
) -> None:
    """The Trivy gate on every image the deploy runs: vulnerabilities (one database, which it
    names with its age), misconfigurations and secrets, an SBOM of each; fails closed."""
    client = docker()
    options = scan_options(offline, db_repository, cache_dir, skip_db_update, max_db_age_days)
    agent = commit_tags(client, image)[0]
    standins = standins_by_upstream_name(client, console.print) if offline else {}
    scan_images(client, ROOT, targets(agent, ROOT, standins), options, log=console.print)


@task(
    help={
        "advisories": "a folder of advisory-record trees in the GHSA layout (default: "
        "$VAIA_ADVISORIES_DIR, else ../shared/advisories)",
        "cache_dir": "the Trivy cache to install the database into (default: the one "
        "`invoke scan --offline` reads)",
    }
)
def vulndb(c: Context, advisories: str = "", cache_dir: str = "") -> None:
    """Build Trivy's vulnerability database here, with Trivy's own builder, from advisory
    records (GitHub Security Advisory layout)."""
    source = Path(advisories) if advisories else default_advisories_dir()
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    summary = build_vulndb(source, target, runner(), log=console.print)
    console.print(
        f"database in {target / 'db'}: {summary.advisories} advisories, the newest published "
        f"{summary.newest} (from {', '.join(summary.trees)})"
    )
    console.print(
        f"scan with it: invoke scan --offline   (or --cache-dir {target} --skip-db-update)"
    )


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
        "offline": "build on the stand-in bases; scan with the database `invoke vulndb` built",
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
        scan=ScanOptions(offline=offline),
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

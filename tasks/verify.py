"""`invoke verify`: the proof before you push, offline, and with `--server` against a cluster."""

from __future__ import annotations

from invoke.context import Context

from devstack.cluster.cli import ClusterCli
from devstack.core.console import console, status, table
from devstack.core.errors import DevstackError, UsageError
from devstack.verify.report import run_all
from tasks._base import ROOT, runner, task


@task(
    help={
        "scanners": "also run trivy config and checkov on every overlay (default on)",
        "server": "also dry-run every overlay against a real API server (server-side apply, "
        "strict validation, admission): the cluster of --context",
        "context": "the kube context for --server (default: the current one)",
    }
)
def verify(c: Context, scanners: bool = True, server: bool = False, context: str = "") -> None:
    """Every overlay rendered and checked, kind-config.yaml checked; with --server, each overlay
    dry-run on a real cluster (kind's, or any context): a table of what passed."""
    cli = None
    if server:
        run = runner()
        chosen = context or run.run("kubectl", "config", "current-context", check=False).stdout
        if not chosen.strip():
            raise UsageError("--server needs a cluster: pass --context, or set a current context")
        cli = ClusterCli(run, chosen.strip())
        cli.kubectl("version", "-o", "json")  # it answers, before anything else runs
    elif context:
        raise UsageError("--context goes with --server")
    checks = run_all(ROOT, with_scanners=scanners, server=cli)
    rows = [
        (check.subject, check.name, status("PASS" if check.passed else "FAIL")) for check in checks
    ]
    console.print(table("invoke verify", ("subject", "check", "result"), rows))
    failed = [check for check in checks if not check.passed]
    for check in failed:
        console.print(f"[red]{check.subject}: {check.name}[/]")
        for problem in check.problems:
            console.print(f"  - {problem}", soft_wrap=True, markup=False)
    if failed:
        raise DevstackError(f"{len(failed)} of {len(checks)} checks failed (listed above)")
    console.print(f"[green]all {len(checks)} checks passed[/]")

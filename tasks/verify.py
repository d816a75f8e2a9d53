"""`invoke verify`: the offline proof, before you push."""

from __future__ import annotations

from invoke import Context

from devstack.core.console import console, status, table
from devstack.core.errors import DevstackError
from devstack.verify.report import run_all
from tasks._base import ROOT, task


@task(help={"scanners": "also run trivy config and checkov on every overlay (default on)"})
def verify(c: Context, scanners: bool = True) -> None:
    """The offline proof, before you push: overlays, Tiltfile, deploys, kind config.

    Every overlay rendered and checked, the Tiltfile loaded and a first `tilt up` replayed,
    what `invoke deploy` applies replayed, kind-config.yaml checked: a table of what passed."""
    checks = run_all(ROOT, with_scanners=scanners)
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

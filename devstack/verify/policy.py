"""checkov on the rendered manifests: every finding is fixed, or skipped in the manifest with a
`checkov.io/skipN: CHECK=reason` annotation, so a reviewer reads a decision, not an oversight."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.render import Obj
from devstack.core.errors import CommandError
from devstack.core.runner import Runner

MIN_REASON = 20  # characters: a reason, not a placeholder


def checkov_report(objs: list[Obj], runner: Runner | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifests.yaml"
        path.write_text(yaml.safe_dump_all(objs))
        args = ["--skip-download", "-f", str(path), "--framework", "kubernetes", "-o", "json"]
        done = (runner or Runner()).run("checkov", *args, check=False, timeout=600)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CommandError("checkov printed no JSON report", detail=done.stderr[-2000:]) from exc
    return report


def checkov_problems(objs: list[Obj], runner: Runner | None = None) -> list[str]:
    results = checkov_report(objs, runner).get("results", {})
    problems = [
        f"{c['check_id']} on {c['resource']}: {c.get('check_name', '')}"
        for c in results.get("failed_checks", [])
    ]
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        if len(reason.strip()) < MIN_REASON:
            problems.append(f"{check['check_id']} on {check['resource']} is skipped without reason")
    return problems

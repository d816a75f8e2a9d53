"""trivy's scans as parsed JSON reports; the gate logic lives in scan.py. `--skip-check-update`
makes misconfiguration scans use the checks embedded in the trivy binary, so they work offline
(the vulnerability DB is a separate download)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.core.errors import CommandError
from devstack.core.runner import Runner

HIGH_AND_CRITICAL = ("HIGH", "CRITICAL")


class TrivyError(CommandError):
    """A trivy scan did not complete, so nothing can be concluded from it."""


@dataclass(frozen=True)
class Finding:
    target: str
    kind: str  # misconfiguration | secret | vulnerability
    id: str
    severity: str
    title: str


def run_trivy(args: Sequence[str], timeout: float = 600, runner: Runner | None = None) -> Any:
    """`trivy <args> --format json --quiet`, parsed; TrivyError when it fails."""
    result = (runner or Runner()).run(
        "trivy", *args, "--format", "json", "--quiet", check=False, timeout=timeout
    )
    if result.returncode != 0:
        error = result.stderr.strip()
        raise TrivyError(
            f"trivy {' '.join(args[:2])} failed (exit {result.returncode})"
            f"{': ' + error.splitlines()[-1] if error else ''}",
            detail=error[-2000:] or None,
        )
    return json.loads(result.stdout or "{}")


def config_scan(path: Path, severities: Iterable[str] = HIGH_AND_CRITICAL) -> dict[str, Any]:
    """Misconfiguration scan of IaC (Dockerfiles, Kubernetes manifests) under `path`."""
    report: dict[str, Any] = run_trivy(
        ["config", "--skip-check-update", "--severity", ",".join(severities), str(path)]
    )
    return report


def image_scan(
    image: str,
    scanners: Iterable[str] = ("misconfig", "secret"),
    severities: Iterable[str] = ("UNKNOWN", "LOW", "MEDIUM", *HIGH_AND_CRITICAL),
) -> dict[str, Any]:
    """Scan a local image (from the docker engine) with the given scanners."""
    args = [
        "image",
        "--image-src",
        "docker",
        "--scanners",
        ",".join(scanners),
        "--skip-check-update",
        "--severity",
        ",".join(severities),
    ]
    if "vuln" not in scanners:
        args.append("--skip-db-update")
    report: dict[str, Any] = run_trivy([*args, image], timeout=900)
    return report


def findings(report: dict[str, Any]) -> list[Finding]:
    found = []
    for result in report.get("Results") or []:
        target = result.get("Target", "")
        for item in result.get("Misconfigurations") or []:
            found.append(
                Finding(
                    target, "misconfiguration", item["ID"], item["Severity"], item.get("Title", "")
                )
            )
        for item in result.get("Secrets") or []:
            found.append(
                Finding(target, "secret", item["RuleID"], item["Severity"], item.get("Title", ""))
            )
        for item in result.get("Vulnerabilities") or []:
            found.append(
                Finding(
                    target,
                    "vulnerability",
                    item["VulnerabilityID"],
                    item["Severity"],
                    item.get("Title", item.get("PkgName", "")),
                )
            )
    return found

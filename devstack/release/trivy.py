"""The one place that calls trivy. Scans return parsed JSON reports; the gate logic lives with
the caller. `--skip-check-update` makes misconfiguration scans use the checks embedded in the
trivy binary, so they work offline (the vulnerability DB is a separate download)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.tools import require

HIGH_AND_CRITICAL = ("HIGH", "CRITICAL")


class TrivyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Finding:
    target: str
    kind: str  # misconfiguration | secret | vulnerability
    id: str
    severity: str
    title: str


def _run(args: Sequence[str], timeout: float = 600) -> dict[str, Any]:
    trivy = require("trivy")
    result = subprocess.run(
        [trivy, *args, "--format", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise TrivyError(
            f"trivy {' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    report: dict[str, Any] = json.loads(result.stdout or "{}")
    return report


def config_scan(path: Path, severities: Iterable[str] = HIGH_AND_CRITICAL) -> dict[str, Any]:
    """Misconfiguration scan of IaC (Dockerfiles, Kubernetes manifests) under `path`."""
    return _run(["config", "--skip-check-update", "--severity", ",".join(severities), str(path)])


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
    return _run([*args, image], timeout=900)


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

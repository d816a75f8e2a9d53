"""Trivy's scans as parsed JSON reports; what blocks the chain is decided in scan.py.

`--skip-check-update` makes misconfiguration scans use the checks embedded in the trivy binary,
so they work offline; the vulnerability database is a separate download, or a database built
here (release/vulndb.py) read with `--cache-dir DIR --skip-db-update`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.core.errors import CommandError
from devstack.core.runner import Runner

HIGH_AND_CRITICAL = ("HIGH", "CRITICAL")
ALL_SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", *HIGH_AND_CRITICAL)
REPORT_SCHEMA = 2  # Trivy's JSON report schema (`SchemaVersion`)
JAVA_ARCHIVES = ("jar", "war", "ear", "par")


class TrivyError(CommandError):
    """A trivy scan did not complete, so nothing can be concluded from it."""


@dataclass(frozen=True)
class Finding:
    target: str
    kind: str  # misconfiguration | secret | vulnerability
    id: str
    severity: str
    title: str
    package: str = ""  # vulnerabilities: name and installed version
    fixed: str = ""  # vulnerabilities: the version that fixes it, if one is released


@dataclass(frozen=True)
class DbSource:
    """Where Trivy reads the vulnerability database from."""

    cache_dir: Path | None = None
    db_repository: str | None = None
    skip_db_update: bool = False

    def args(self) -> list[str]:
        args = []
        if self.db_repository:
            args += ["--db-repository", self.db_repository]
        if self.cache_dir:
            args += ["--cache-dir", str(self.cache_dir)]
        if self.skip_db_update:
            args.append("--skip-db-update")
        return args + self.java_args()

    def java_args(self) -> list[str]:
        """Offline, Java archives are left out: Trivy identifies them through an index
        database of their own (trivy-java-db, another download, which it cannot skip on a first
        run); the advisory records built here hold no Maven package anyway."""
        if self.cache_dir and not self.db_repository and self.skip_db_update:
            return ["--skip-files", ",".join(f"**/*.{ext}" for ext in JAVA_ARCHIVES)]
        return []


def run_trivy(
    args: Sequence[str], timeout: float = 600, runner: Runner | None = None, fmt: str = "json"
) -> Any:
    """`trivy <args> --format <fmt> --quiet`; the JSON report parsed (other formats: the text).
    TrivyError when trivy fails."""
    result = (runner or Runner()).run(
        "trivy", *args, "--format", fmt, "--quiet", check=False, timeout=timeout
    )
    if result.returncode != 0:
        error = result.stderr.strip()
        raise TrivyError(
            f"trivy {' '.join(args[:2])} failed (exit {result.returncode})"
            f"{': ' + error.splitlines()[-1] if error else ''}",
            detail=error[-2000:] or None,
        )
    return json.loads(result.stdout or "{}") if fmt == "json" else result.stdout


def _ignore_args(ignorefile: Path | None) -> list[str]:
    return ["--ignorefile", str(ignorefile)] if ignorefile and ignorefile.exists() else []


def config_scan(
    path: Path,
    severities: Iterable[str] = HIGH_AND_CRITICAL,
    ignorefile: Path | None = None,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Misconfiguration scan of IaC (Dockerfiles, Kubernetes manifests) under `path`."""
    report: dict[str, Any] = run_trivy(
        [
            "config",
            "--skip-check-update",
            "--severity",
            ",".join(severities),
            *_ignore_args(ignorefile),
            str(path),
        ],
        runner=runner,
    )
    return report


def image_scan(
    image: str,
    scanners: Iterable[str] = ("misconfig", "secret"),
    ignorefile: Path | None = None,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Misconfigurations and secrets of a local image (from the docker engine)."""
    args = [
        "image",
        "--image-src",
        "docker",
        "--scanners",
        ",".join(scanners),
        "--skip-check-update",
        "--skip-db-update",
        "--severity",
        ",".join(ALL_SEVERITIES),
        *_ignore_args(ignorefile),
    ]
    report: dict[str, Any] = run_trivy([*args, image], timeout=900, runner=runner)
    return report


def vulnerability_scan(
    image: str,
    db: DbSource,
    ignorefile: Path | None = None,
    remote: bool = False,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Every vulnerability of every severity, fixed upstream or not; the ones the ignore file
    accepts kept in the report as suppressed (`--show-suppressed`), with their statement.
    `remote`: an image not in the docker engine is read from its registry."""
    args = [
        "image",
        "--image-src",
        "docker,remote" if remote else "docker",
        "--scanners",
        "vuln",
        "--show-suppressed",
        *db.args(),
        *_ignore_args(ignorefile),
    ]
    report: dict[str, Any] = run_trivy([*args, image], timeout=900, runner=runner)
    return report


def sbom(
    image: str,
    output: Path,
    db: DbSource = DbSource(),
    remote: bool = False,
    runner: Runner | None = None,
) -> Path:
    """A CycloneDX SBOM of the image's packages (no vulnerability database needed: nothing is
    matched)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    source = "docker,remote" if remote else "docker"
    run_trivy(
        ["image", "--image-src", source, *db.java_args(), "--output", str(output), image],
        timeout=900,
        runner=runner,
        fmt="cyclonedx",
    )
    return output


def to_sarif(json_report: Path, runner: Runner | None = None) -> Path:
    """The JSON report as SARIF (what GitHub's code scanning reads), beside it."""
    sarif = json_report.with_suffix(".sarif")
    (runner or Runner()).run(
        "trivy", "convert", "--format", "sarif", "--output", str(sarif), str(json_report)
    )
    return sarif


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
                    f"{item.get('PkgName', '')} {item.get('InstalledVersion', '')}".strip(),
                    item.get("FixedVersion", ""),
                )
            )
    return found


@dataclass(frozen=True)
class Suppressed:
    """A finding the ignore file accepted, as Trivy reports it (`--show-suppressed`)."""

    id: str
    package: str
    status: str
    statement: str


def suppressed(report: dict[str, Any]) -> list[Suppressed]:
    found = []
    for result in report.get("Results") or []:
        # Trivy calls the list experimental (`--show-suppressed` is), so both names are read.
        modified = result.get("ModifiedFindings") or result.get("ExperimentalModifiedFindings")
        for item in modified or []:
            finding = item.get("Finding") or {}
            package = f"{finding.get('PkgName', '')} {finding.get('InstalledVersion', '')}"
            ident = finding.get("VulnerabilityID") or finding.get("ID") or finding.get("RuleID")
            found.append(
                Suppressed(
                    ident or "",
                    package.strip(),
                    item.get("Status", ""),
                    item.get("Statement", ""),
                )
            )
    return found

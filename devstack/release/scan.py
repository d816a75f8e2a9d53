"""The Trivy gate of the CD chain. It fails closed: anything it cannot check is a failure.

- vulnerabilities of the image (HIGH, CRITICAL, fixed upstream: `--ignore-unfixed`). When the
  vulnerability database cannot be fetched the gate fails with what to do: a mirror
  (`--db-repository`), a cached database (`--cache-dir`, `--skip-db-update`), or a report made
  where the database is reachable (`--vuln-report`);
- misconfigurations and secrets in the image; misconfigurations of the Dockerfile and of every
  rendered overlay;
- `.trivyignore`: every entry needs a reason (a comment above it) and an expiry (`exp:YYYY-MM-DD`);
  an expired entry fails the gate.
A passed scan is recorded against the image id, and `invoke push` refuses an image without one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.render import OVERLAYS, render
from devstack.core.errors import DevstackError
from devstack.core.runner import Runner
from devstack.image.docker import Docker
from devstack.release.trivy import (
    HIGH_AND_CRITICAL,
    Finding,
    TrivyError,
    config_scan,
    findings,
    image_scan,
    run_trivy,
)

_IGNORE_LINE = re.compile(r"^(?P<id>[A-Za-z0-9_.:-]+)(?:\s+exp:(?P<exp>\d{4}-\d{2}-\d{2}))?\s*$")
DB_HINT = (
    "the Trivy vulnerability database could not be fetched, so the gate fails closed. Point Trivy "
    "at a mirror (--db-repository REGISTRY/REPO), at a cached database (--cache-dir DIR, fetched "
    "earlier with `trivy image --download-db-only --cache-dir DIR`), or pass a report made where "
    "the database is reachable (--vuln-report FILE)"
)


class ScanError(DevstackError):
    """The gate could not run a check, or found what blocks the chain: it fails, never passes."""


@dataclass(frozen=True)
class IgnoreEntry:
    id: str
    expires: date
    reason: str


def parse_trivyignore(path: Path) -> list[IgnoreEntry]:
    """Entries with a reason (comment lines just above) and an expiry; anything else is an error."""
    if not path.exists():
        return []
    entries, reason, problems = [], [], []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            reason = []
        elif line.startswith("#"):
            reason.append(line.lstrip("# ").strip())
        else:
            match = _IGNORE_LINE.match(line)
            if match is None:
                problems.append(f"line {number}: not `ID exp:YYYY-MM-DD`: {line!r}")
            elif match["exp"] is None:
                problems.append(f"line {number}: {match['id']} has no expiry (exp:YYYY-MM-DD)")
            elif not " ".join(reason).strip():
                problems.append(
                    f"line {number}: {match['id']} has no reason (a comment line above it)"
                )
            else:
                expires = date.fromisoformat(match["exp"])
                entries.append(IgnoreEntry(match["id"], expires, " ".join(reason)))
            reason = []
    if problems:
        raise ScanError(f"{path.name}: " + "; ".join(problems))
    return entries


def expired(entries: Iterable[IgnoreEntry], today: date) -> list[IgnoreEntry]:
    return [e for e in entries if e.expires < today]


def blocking(
    report: dict[str, Any], ignored: set[str], ignore_unfixed: bool = True
) -> list[Finding]:
    """What stops the chain: HIGH/CRITICAL vulnerabilities with a fix (unless ignored),
    HIGH/CRITICAL misconfigurations, and any secret at all."""
    stops = []
    fixed = {
        item["VulnerabilityID"]
        for result in report.get("Results") or []
        for item in result.get("Vulnerabilities") or []
        if item.get("FixedVersion")
    }
    for finding in findings(report):
        if finding.id in ignored:
            continue
        if finding.kind == "secret":
            stops.append(finding)
        elif finding.severity in HIGH_AND_CRITICAL:
            if finding.kind == "vulnerability" and ignore_unfixed and finding.id not in fixed:
                continue
            stops.append(finding)
    return stops


def vulnerability_report(
    image: str, db_repository: str | None, cache_dir: Path | None, skip_db_update: bool
) -> dict[str, Any]:
    severity = ",".join(HIGH_AND_CRITICAL)
    args = ["image", "--image-src", "docker", "--scanners", "vuln"]
    args += ["--severity", severity, "--ignore-unfixed"]
    if db_repository:
        args += ["--db-repository", db_repository]
    if cache_dir:
        args += ["--cache-dir", str(cache_dir)]
    if skip_db_update:
        args.append("--skip-db-update")
    try:
        report: dict[str, Any] = run_trivy([*args, image], timeout=900)
    except TrivyError as exc:
        if "DB error" in (exc.detail or "") or "vulnerability DB" in (exc.detail or ""):
            raise ScanError(DB_HINT) from exc
        raise ScanError(f"trivy vulnerability scan failed: {exc}", detail=exc.detail) from exc
    return report


def to_sarif(json_report: Path) -> Path:
    sarif = json_report.with_suffix(".sarif")
    Runner().run("trivy", "convert", "--format", "sarif", "--output", str(sarif), str(json_report))
    return sarif


@dataclass
class ScanResult:
    image: str
    image_id: str
    passed: bool
    blocking: list[Finding]
    reports: list[str] = field(default_factory=list)
    vulnerability_source: str = ""


def scans_dir(root: Path) -> Path:
    return root / ".vaia" / "scans"


def record_path(root: Path, image_id: str) -> Path:
    return scans_dir(root) / f"{image_id.replace(':', '-')}.json"


def passed_scan(root: Path, image_id: str) -> dict[str, Any] | None:
    path = record_path(root, image_id)
    if not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    return record if record.get("passed") and record.get("image_id") == image_id else None


def run_gate(
    root: Path,
    image: str,
    image_id: str,
    report_dir: Path,
    *,
    vuln_report: Path | None = None,
    db_repository: str | None = None,
    cache_dir: Path | None = None,
    skip_db_update: bool = False,
    ignore_file: Path | None = None,
    today: date | None = None,
    log: Callable[[str], None] = print,
) -> ScanResult:
    report_dir.mkdir(parents=True, exist_ok=True)
    entries = parse_trivyignore(ignore_file or root / ".trivyignore")
    stale = expired(entries, today or datetime.now(UTC).date())
    if stale:
        listed = ", ".join(f"{e.id} (expired {e.expires})" for e in stale)
        raise ScanError(
            f".trivyignore has expired entries: {listed}; fix them or renew with a reason"
        )
    ignored = {e.id for e in entries}

    reports: dict[str, dict[str, Any]] = {}
    if vuln_report is not None:
        log(f"vulnerabilities: from the report {vuln_report}")
        reports["vulnerabilities"] = _read_report(vuln_report)
        source = f"report {vuln_report}"
    else:
        log("vulnerabilities: trivy image --scanners vuln")
        reports["vulnerabilities"] = vulnerability_report(
            image, db_repository, cache_dir, skip_db_update
        )
        source = "trivy image"
    log("misconfigurations and secrets in the image")
    reports["image-misconfig-secret"] = image_scan(image)
    log("misconfigurations of the Dockerfile and the rendered overlays")
    rendered = report_dir / "manifests"
    rendered.mkdir(exist_ok=True)
    for overlay in OVERLAYS:
        (rendered / f"{overlay}.yaml").write_text(yaml.safe_dump_all(render(root, overlay)))
    reports["dockerfile"] = config_scan(root / "Dockerfile")
    reports["manifests"] = config_scan(rendered)

    stops: list[Finding] = []
    written = []
    for name, report in reports.items():
        path = report_dir / f"{name}.json"
        path.write_text(json.dumps(report, indent=2))
        written += [str(path), str(to_sarif(path))]
        stops += blocking(report, ignored)
    result = ScanResult(image, image_id, not stops, stops, written, source)
    if result.passed:
        record = record_path(root, image_id)
        record.parent.mkdir(parents=True, exist_ok=True)
        payload = {**asdict(result), "scanned_at": datetime.now(UTC).isoformat(timespec="seconds")}
        record.write_text(json.dumps(payload, indent=2))
    return result


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except OSError as exc:
        raise ScanError(f"cannot read the vulnerability report {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScanError(f"{path} is not a Trivy JSON report: {exc}") from exc
    return report


@dataclass(frozen=True)
class ScanOptions:
    """Where the vulnerabilities come from (invoke --help scan)."""

    vuln_report: Path | None = None
    db_repository: str | None = None
    cache_dir: Path | None = None
    skip_db_update: bool = False


def scan_image(
    docker: Docker,
    root: Path,
    image: str,
    options: ScanOptions = ScanOptions(),
    log: Callable[[str], None] = print,
) -> ScanResult:
    """The gate on one local image: reports under reports/scan/<image id>/, the passed scan
    recorded; ScanError when anything blocks."""
    if not docker.image_exists(image):
        raise ScanError(f"{image} does not exist here: run `invoke build` first (or pass --image)")
    image_id = str(docker.inspect(image)["Id"])
    report_dir = root / "reports" / "scan" / image_id.replace(":", "-")[:19]
    result = run_gate(
        root,
        image,
        image_id,
        report_dir,
        vuln_report=options.vuln_report,
        db_repository=options.db_repository,
        cache_dir=options.cache_dir,
        skip_db_update=options.skip_db_update,
        log=log,
    )
    for finding in result.blocking:
        log(
            f"  {finding.severity} {finding.kind} {finding.id} in {finding.target}: {finding.title}"
        )
    log(f"reports: {report_dir} (JSON and SARIF)")
    if not result.passed:
        raise ScanError(f"{len(result.blocking)} blocking finding(s) in {image}")
    log(f"scan passed for {image} ({image_id[:19]}); recorded")
    return result

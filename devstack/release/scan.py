"""The Trivy gate of the CD chain, on every image the deploy runs. It fails closed: anything it
cannot check is a failure.

- Vulnerabilities of every image (the agent's, and the Redis, Chroma and proxy images the
  manifests and Compose name), from one database: HIGH and CRITICAL block, fixed upstream or
  not. A finding with no fix is not a pass: it is accepted only by an entry of
  `.trivyignore.yaml` with a statement and an expiry (release/ignorefile.py), and Trivy keeps it
  in the report as suppressed, with that statement.
- Misconfigurations and secrets of the agent's image, of the Dockerfile and of every rendered
  overlay (the other images are upstream's: their vulnerabilities are what we can act on).
- The database: the gate says which one it read and how old it is, and refuses one older than
  the limit (in CI, 7 days; release/vulndb.py). A report that does not have the shape the gate
  reads (`SchemaVersion` 2 and a `Results` list) fails: nothing can be concluded from it.
- An SBOM (CycloneDX) of each image, kept with the reports, so a later advisory can be checked
  against what shipped without rebuilding.
A passed scan is recorded against the image id, and `invoke push` refuses an image without one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.render import OVERLAYS, deployed_images, render
from devstack.core.errors import DevstackError
from devstack.image.docker import Docker
from devstack.release import ignorefile, vulndb
from devstack.release.trivy import (
    HIGH_AND_CRITICAL,
    REPORT_SCHEMA,
    DbSource,
    Finding,
    Suppressed,
    TrivyError,
    config_scan,
    findings,
    image_scan,
    sbom,
    suppressed,
    to_sarif,
    vulnerability_scan,
)

Log = Callable[[str], None]
DB_HINT = (
    "the Trivy vulnerability database could not be read, so the gate fails closed. Build one here "
    "(`invoke vulndb`, then `invoke scan --offline`), point Trivy at a mirror (--db-repository "
    "REGISTRY/REPO), or at a cache that holds one (--cache-dir DIR --skip-db-update)"
)


class ScanError(DevstackError):
    """The gate could not run a check, or found what blocks the chain: it fails, never passes."""


@dataclass(frozen=True)
class ScanOptions:
    """Where the vulnerability database comes from (invoke --help scan)."""

    db_repository: str | None = None
    cache_dir: Path | None = None
    skip_db_update: bool = False
    max_db_age_days: int | None = None  # None: the default rule (vulndb.max_age_days)
    offline: bool = False  # the database `invoke vulndb` built; stand-ins for upstream images

    def source(self) -> DbSource:
        if self.offline:
            return DbSource(self.cache_dir or vulndb.default_cache_dir(), None, True)
        return DbSource(self.cache_dir, self.db_repository, self.skip_db_update)

    def database_dir(self) -> Path:
        return self.source().cache_dir or vulndb.trivy_default_cache_dir()


def check_report(report: Any, image: str) -> dict[str, Any]:
    """The report, if it has the shape the gate reads; else ScanError (fail closed)."""
    if not isinstance(report, dict) or report.get("SchemaVersion") != REPORT_SCHEMA:
        version = report.get("SchemaVersion") if isinstance(report, dict) else None
        raise ScanError(
            f"trivy's report for {image} has SchemaVersion {version!r}, not {REPORT_SCHEMA}: the "
            "gate cannot read it, so it fails closed"
        )
    if not isinstance(report.get("Results"), list):
        raise ScanError(
            f"trivy's report for {image} has no Results: no package was found, or the report "
            "changed shape; nothing can be concluded, so the gate fails closed"
        )
    return report


def blocking(report: dict[str, Any]) -> list[Finding]:
    """What stops the chain: HIGH/CRITICAL vulnerabilities (fixed or not) and
    misconfigurations, and any secret at all. Accepted findings are not in `Results`' lists:
    Trivy moved them to the suppressed ones."""
    stops = []
    for finding in findings(report):
        if finding.kind == "secret" or finding.severity in HIGH_AND_CRITICAL:
            stops.append(finding)
    return stops


def severity_counts(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings(report):
        if finding.kind == "vulnerability":
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return counts


@dataclass
class ScanResult:
    image: str
    image_id: str
    passed: bool
    blocking: list[Finding]
    accepted: list[Suppressed] = field(default_factory=list)
    vulnerabilities: dict[str, int] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)
    database: str = ""


def record_path(root: Path, image_id: str) -> Path:
    return root / ".vaia" / "scans" / f"{image_id.replace(':', '-')}.json"


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
    options: ScanOptions = ScanOptions(),
    *,
    ours: bool = True,
    remote: bool = False,
    now: datetime | None = None,
    log: Log = print,
) -> ScanResult:
    """The gate on one image: `ours` adds misconfigurations and secrets (image, Dockerfile,
    overlays); `remote` lets Trivy read an image the docker engine does not have from its
    registry."""
    now = now or datetime.now(UTC)
    ignores = root / ignorefile.NAME
    try:
        ignorefile.check(ignores, now.date())
    except ignorefile.IgnoreFileError as exc:
        raise ScanError(str(exc)) from exc
    report_dir.mkdir(parents=True, exist_ok=True)

    reports: dict[str, dict[str, Any]] = {}
    try:
        raw = vulnerability_scan(image, options.source(), ignores, remote=remote)
    except TrivyError as exc:
        if "DB" in (exc.detail or "") or "database" in (exc.detail or ""):
            raise ScanError(DB_HINT, detail=exc.detail) from exc
        raise ScanError(f"trivy vulnerability scan of {image} failed: {exc}", exc.detail) from exc
    reports["vulnerabilities"] = check_report(raw, image)
    database = _database(options, now, log)
    if ours:
        reports["image-misconfig-secret"] = image_scan(image, ignorefile=ignores)
        rendered = report_dir / "manifests"
        rendered.mkdir(exist_ok=True)
        for overlay in OVERLAYS:
            (rendered / f"{overlay}.yaml").write_text(yaml.safe_dump_all(render(root, overlay)))
        reports["dockerfile"] = config_scan(root / "Dockerfile", ignorefile=ignores)
        reports["manifests"] = config_scan(rendered, ignorefile=ignores)

    stops: list[Finding] = []
    written = []
    for name, report in reports.items():
        path = report_dir / f"{name}.json"
        path.write_text(json.dumps(report, indent=2))
        written += [str(path), str(to_sarif(path))]
        stops += blocking(report)
    sbom_file = sbom(image, report_dir / "sbom.cdx.json", options.source(), remote=remote)
    written.append(str(sbom_file))
    result = ScanResult(
        image,
        image_id,
        not stops,
        stops,
        suppressed(reports["vulnerabilities"]),
        severity_counts(reports["vulnerabilities"]),
        written,
        database,
    )
    if result.passed:
        record = record_path(root, image_id)
        record.parent.mkdir(parents=True, exist_ok=True)
        payload = {**asdict(result), "scanned_at": now.isoformat(timespec="seconds")}
        record.write_text(json.dumps(payload, indent=2))
    return result


def _database(options: ScanOptions, now: datetime, log: Log) -> str:
    """The line that says which database the scan read; ScanError when it is too old."""
    try:
        database = vulndb.describe(options.database_dir())
        vulndb.check_age(database, vulndb.max_age_days(options.max_db_age_days), now)
    except vulndb.VulnDbError as exc:
        raise ScanError(str(exc)) from exc
    line = database.line(now)
    log(line)
    return line


# --- the images the deploy runs ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """An image to scan: the name the deploy runs, and the local image that stands for it."""

    name: str
    local: str
    ours: bool


def scan_images(
    docker: Docker,
    root: Path,
    targets: Iterable[Target],
    options: ScanOptions = ScanOptions(),
    now: datetime | None = None,
    log: Log = print,
) -> list[ScanResult]:
    """The gate on each image; reports under reports/scan/<image id>/. Every image is scanned
    before the verdict, so one run shows all that blocks; ScanError if anything does."""
    results = []
    for target in targets:
        present = docker.image_exists(target.local)
        if target.ours and not present:
            raise ScanError(f"{target.local} does not exist here: run `invoke build` first")
        remote = not present and not options.offline
        if not present and options.offline:
            raise ScanError(
                f"{target.local} (for {target.name}) is not in the docker engine, and --offline "
                "pulls nothing: build the stand-ins (`invoke compose.up --offline` builds them)"
            )
        image_id = str(docker.inspect(target.local)["Id"]) if present else target.local
        report_dir = root / "reports" / "scan" / image_id.replace(":", "-")[:19]
        label = target.name if target.name == target.local else f"{target.name} ({target.local})"
        log(f"[bold]{label}[/]")
        result = run_gate(
            root,
            target.local,
            image_id,
            report_dir,
            options,
            ours=target.ours,
            remote=remote,
            now=now,
            log=log,
        )
        result.image = target.name
        _report(result, report_dir, log)
        results.append(result)
    failed = [r for r in results if not r.passed]
    if failed:
        listed = "; ".join(f"{r.image}: {len(r.blocking)}" for r in failed)
        raise ScanError(f"blocking findings ({listed})")
    return results


def _report(result: ScanResult, report_dir: Path, log: Log) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.vulnerabilities.items())) or "none"
    log(f"  vulnerabilities: {counts}")
    for item in result.accepted:
        log(f"  accepted {item.id} in {item.package} ({item.status}): {item.statement}")
    for finding in result.blocking:
        package = f"{finding.package}, fixed in {finding.fixed or 'no release'}: "
        what = f"{finding.severity} {finding.kind} {finding.id} in {finding.target}"
        log(f"  BLOCKS {what}: {package if finding.package else ''}{finding.title}")
    verdict = "passed, recorded" if result.passed else f"{len(result.blocking)} blocking finding(s)"
    log(f"  {verdict}; reports and SBOM: {report_dir}")


def targets(
    agent_image: str, root: Path, local_names: Mapping[str, str] | None = None
) -> list[Target]:
    """The agent's image and the images the deploy runs; `local_names` maps an upstream name
    to the stand-in that is scanned in its place (offline)."""
    names = local_names or {}
    return [Target(agent_image, agent_image, ours=True)] + [
        Target(name, names.get(name, name), ours=False) for name in deployed_images(root)
    ]

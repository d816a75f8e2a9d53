"""Trivy's vulnerability database, built here from advisory records by Trivy's own builder.

Trivy downloads its database from ghcr.io, which machines without that network cannot reach;
then the gate's vulnerability half has nothing to read. `invoke vulndb` builds the same kind of
database with `trivy-db build` (github.com/aquasecurity/trivy-db, built from its module into the
binaries' cache like the other tools) from GitHub Security Advisory records laid out as in
github/advisory-database (`<tree>/advisories/github-reviewed/YYYY/MM/GHSA-…/GHSA-….json`), and
installs it where `trivy --cache-dir DIR --skip-db-update` reads it (`DIR/db/trivy.db` and
`metadata.json`). Beside them, `vaia-vulndb.json` says what went in: how many records, from
which trees, and the newest advisory's date (the builder's own metadata only knows when it ran).

`describe()` reads a database (ours or one Trivy downloaded) for `invoke scan`, which says which
one it used and how old it is, and refuses one older than a limit in CI: a stale database
passes everything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from devstack.core.cache import cache_root
from devstack.core.errors import DevstackError
from devstack.core.names import REPO, TRIVY_DB_VERSION
from devstack.core.runner import Runner

Log = Callable[[str], None]

LAYOUT = Path("advisories") / "github-reviewed"
SUMMARY = "vaia-vulndb.json"
ADVISORIES_SETTING = "VAIA_ADVISORIES_DIR"
MAX_AGE_SETTING = "VAIA_MAX_DB_AGE_DAYS"
CI_MAX_AGE_DAYS = 7


class VulnDbError(DevstackError):
    """The records cannot be read, the builder failed, or the database is missing or stale."""


def default_cache_dir() -> Path:
    """Where `invoke vulndb` installs the database and `invoke scan --offline` reads it."""
    return cache_root() / "trivy"


def trivy_default_cache_dir() -> Path:
    """Trivy's own cache (where its download lands): $TRIVY_CACHE_DIR, else ~/.cache/trivy."""
    if os.environ.get("TRIVY_CACHE_DIR"):
        return Path(os.environ["TRIVY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trivy"


def default_advisories_dir() -> Path:
    """$VAIA_ADVISORIES_DIR, else the shared records beside the checkout (../shared/advisories)."""
    configured = os.environ.get(ADVISORIES_SETTING)
    return Path(configured) if configured else REPO.parent / "shared" / "advisories"


@dataclass(frozen=True)
class Advisory:
    id: str
    published: date
    path: Path


def record_trees(root: Path) -> list[Path]:
    """Every tree of records in the GHSA layout at or under `root` (one level down)."""
    if not root.is_dir():
        raise VulnDbError(
            f"no advisory records at {root}: pass --advisories DIR (or set {ADVISORIES_SETTING}) "
            f"to a folder holding trees laid out as <tree>/{LAYOUT}/YYYY/MM/GHSA-…/GHSA-….json"
        )
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    trees = [tree for tree in candidates if (tree / LAYOUT).is_dir()]
    if not trees:
        raise VulnDbError(
            f"{root} holds no tree of GHSA records: expected <tree>/{LAYOUT}/YYYY/MM/GHSA-…/"
            "GHSA-….json (as in github/advisory-database)"
        )
    return trees


def read_records(trees: Iterable[Path]) -> list[Advisory]:
    """The records of every tree; one id in two trees must be the same record."""
    found: dict[str, Advisory] = {}
    for tree in trees:
        for path in sorted((tree / LAYOUT).glob("*/*/GHSA-*/GHSA-*.json")):
            advisory = _read(path)
            earlier = found.get(advisory.id)
            if earlier is not None and earlier.path.read_bytes() != path.read_bytes():
                raise VulnDbError(
                    f"{advisory.id} is in two trees with different contents: {earlier.path} "
                    f"and {path}; keep one"
                )
            found.setdefault(advisory.id, advisory)
    if not found:
        raise VulnDbError(f"no GHSA-*.json record under {', '.join(map(str, trees))}")
    return sorted(found.values(), key=lambda a: a.id)


def _read(path: Path) -> Advisory:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VulnDbError(f"{path} is not a readable JSON advisory record: {exc}") from exc
    if not isinstance(record, dict) or record.get("id") != path.stem:
        raise VulnDbError(f"{path}: its `id` is not {path.stem!r}, the name of its file")
    stamp = record.get("published") or record.get("modified")
    try:
        if stamp is not None:
            return Advisory(path.stem, datetime.fromisoformat(str(stamp)).date(), path)
        # Without either date (OSV makes `published` optional), the month of its folder:
        # github/advisory-database files a record under the year and month it was published.
        month, year = path.parents[1].name, path.parents[2].name
        return Advisory(path.stem, date(int(year), int(month), 1), path)
    except ValueError as exc:
        raise VulnDbError(
            f"{path}: no ISO 8601 `published` or `modified` date, and no YYYY/MM folders"
        ) from exc


@dataclass(frozen=True)
class Summary:
    """What `invoke vulndb` put into a database (written beside it as vaia-vulndb.json)."""

    advisories: int
    newest: str  # the newest advisory's publication date
    trees: list[str]
    builder: str
    built_at: str


def build(
    advisories_dir: Path,
    cache_dir: Path,
    runner: Runner,
    log: Log = print,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Summary:
    """trivy-db's build from every tree of records under `advisories_dir`, installed into
    `cache_dir/db` whole (the old database stays until the new one is complete)."""
    trees = record_trees(advisories_dir)
    records = read_records(trees)
    runner.preflight("trivy-db", "go")  # its GHSA source lists Go's standard library at start
    with tempfile.TemporaryDirectory(prefix="vaia-vulndb-") as tmp:
        work = Path(tmp)
        # The builder reads <cache>/ghsa/advisories/github-reviewed, and walks CocoaPods' specs
        # (to name Swift packages) from <cache>/cocoapods-specs/Specs, which must exist.
        for advisory in records:
            relative = advisory.path.relative_to(advisory.path.parents[5])  # from advisories/
            target = work / "ghsa" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(advisory.path, target)
        (work / "cocoapods-specs" / "Specs").mkdir(parents=True)
        out = work / "out"
        log(f"trivy-db build: {len(records)} GHSA records from {len(trees)} tree(s)")
        runner.run(
            "trivy-db",
            "build",
            "--cache-dir",
            str(work),
            "--output-dir",
            str(out),
            "--only-update",
            "ghsa",
            timeout=900,
        )
        missing = [name for name in ("trivy.db", "metadata.json") if not (out / name).is_file()]
        if missing:
            raise VulnDbError(f"trivy-db build wrote no {' or '.join(missing)} into {out}")
        summary = Summary(
            advisories=len(records),
            newest=max(a.published for a in records).isoformat(),
            trees=[str(tree) for tree in trees],
            builder=f"trivy-db {TRIVY_DB_VERSION}",
            built_at=now().isoformat(timespec="seconds"),
        )
        (out / SUMMARY).write_text(json.dumps(asdict(summary), indent=2) + "\n")
        _install(out, cache_dir / "db")
    return summary


def _install(built: Path, db_dir: Path) -> None:
    db_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = db_dir.with_name("db.partial")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(built, staged)
    old = db_dir.with_name("db.old")
    shutil.rmtree(old, ignore_errors=True)
    if db_dir.exists():
        db_dir.rename(old)
    staged.rename(db_dir)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class Database:
    """A Trivy database as `invoke scan` reports it."""

    path: Path
    updated_at: datetime
    schema: int
    summary: Summary | None  # None: not built by `invoke vulndb` (e.g. Trivy's download)

    def age_days(self, now: datetime) -> float:
        return (now - self.updated_at).total_seconds() / 86400

    def line(self, now: datetime) -> str:
        age = self.age_days(now)
        origin = (
            f"built by {self.summary.builder} from {self.summary.advisories} advisories "
            f"(newest {self.summary.newest})"
            if self.summary
            else "Trivy's download"
        )
        return (
            f"vulnerability database {self.path} (schema {self.schema}): {origin}, updated "
            f"{self.updated_at:%Y-%m-%d %H:%M} UTC, {age:.1f} days old"
        )


def describe(cache_dir: Path) -> Database:
    """The database in `cache_dir/db`, from its metadata.json (and our summary, if any)."""
    db_dir = cache_dir / "db"
    metadata = db_dir / "metadata.json"
    if not (db_dir / "trivy.db").is_file() or not metadata.is_file():
        raise VulnDbError(f"no Trivy database in {db_dir}: build one with `invoke vulndb`")
    try:
        fields = json.loads(metadata.read_text())
        updated = datetime.fromisoformat(str(fields["UpdatedAt"]).replace("Z", "+00:00"))
        schema = int(fields["Version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VulnDbError(f"{metadata} is not Trivy's database metadata: {exc}") from exc
    summary = None
    if (db_dir / SUMMARY).is_file():
        summary = Summary(**json.loads((db_dir / SUMMARY).read_text()))
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    return Database(db_dir, updated, schema, summary)


def max_age_days(explicit: int | None = None) -> int | None:
    """The age limit: the flag, else $VAIA_MAX_DB_AGE_DAYS, else 7 days in CI ($CI), else none."""
    if explicit is not None:
        return explicit or None
    configured = os.environ.get(MAX_AGE_SETTING)
    if configured:
        try:
            return int(configured) or None
        except ValueError as exc:
            raise VulnDbError(f"{MAX_AGE_SETTING}={configured!r} is not a number of days") from exc
    return CI_MAX_AGE_DAYS if os.environ.get("CI", "").lower() in ("1", "true", "yes") else None


def check_age(database: Database, limit: int | None, now: datetime) -> None:
    if limit is not None and database.age_days(now) > limit:
        raise VulnDbError(
            f"the vulnerability database {database.path} is {database.age_days(now):.1f} days "
            f"old, over the limit of {limit}: a stale database passes everything. Rebuild it "
            "(`invoke vulndb`) or let Trivy download a fresh one"
        )

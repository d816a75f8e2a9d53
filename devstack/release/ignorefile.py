"""`.trivyignore.yaml`: the findings the gate accepts, each with why and until when.

Trivy reads the file itself (`--ignorefile`): an entry names a finding by id, may narrow it to
packages (`purls`) or files (`paths`), and stops applying after `expired_at`. The gate adds what
Trivy leaves optional: every entry needs a `statement` (the reason, kept in the scan's report as
the suppression's statement) and an `expired_at`, and an expired entry fails the gate before
anything is scanned, instead of quietly turning back into a finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from devstack.core.errors import DevstackError

NAME = ".trivyignore.yaml"
SECTIONS = ("vulnerabilities", "misconfigurations", "secrets", "licenses")
_KEYS = {"id", "statement", "expired_at", "paths", "purls"}


class IgnoreFileError(DevstackError):
    """The ignore file is malformed, or one of its entries has expired."""


@dataclass(frozen=True)
class Accepted:
    """One accepted finding."""

    section: str
    id: str
    statement: str
    expires: date
    purls: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


def parse(path: Path) -> list[Accepted]:
    """Every entry, checked; IgnoreFileError listing each problem found."""
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise IgnoreFileError(f"{path.name} is not YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise IgnoreFileError(f"{path.name}: a mapping of {', '.join(SECTIONS)} is expected")
    problems: list[str] = []
    entries: list[Accepted] = []
    for section, items in document.items():
        if section not in SECTIONS:
            problems.append(f"unknown section {section!r} (one of {', '.join(SECTIONS)})")
            continue
        for number, item in enumerate(items or [], start=1):
            where = f"{section}[{number}]"
            entry = _entry(section, item, where, problems)
            if entry is not None:
                entries.append(entry)
    if problems:
        raise IgnoreFileError(f"{path.name}: " + "; ".join(problems))
    return entries


def _entry(section: str, item: Any, where: str, problems: list[str]) -> Accepted | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        problems.append(f"{where}: an entry needs an `id`")
        return None
    where = f"{where} ({item['id']})"
    unknown = set(item) - _KEYS
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    statement = item.get("statement")
    if not isinstance(statement, str) or not statement.strip():
        problems.append(f"{where}: no `statement` (why the finding is accepted)")
    expires = item.get("expired_at")
    if not isinstance(expires, date):
        problems.append(f"{where}: no `expired_at` date (YYYY-MM-DD)")
    scopes = {key: item.get(key) or [] for key in ("purls", "paths")}
    for key, values in scopes.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{where}: `{key}` must be a list of strings")
    if not isinstance(statement, str) or not isinstance(expires, date):
        return None
    return Accepted(
        section,
        item["id"],
        " ".join(statement.split()),
        expires,
        tuple(scopes["purls"]),
        tuple(scopes["paths"]),
    )


def expired(entries: Iterable[Accepted], today: date) -> list[Accepted]:
    """Entries whose date has come: Trivy stops applying an entry at 00:00 UTC of `expired_at`."""
    return [e for e in entries if e.expires <= today]


def check(path: Path, today: date) -> list[Accepted]:
    """The entries, or IgnoreFileError when the file is malformed or an entry has expired."""
    entries = parse(path)
    stale = expired(entries, today)
    if stale:
        listed = ", ".join(f"{e.id} (expired {e.expires})" for e in stale)
        raise IgnoreFileError(
            f"{path.name} has expired entries: {listed}. Fix the finding (the pinned version "
            "moves when upstream releases a fix) or renew the entry with a new statement"
        )
    return entries

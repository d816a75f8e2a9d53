import json
from datetime import date

import pytest

from devstack.release.scan import ScanError, blocking, expired, parse_trivyignore
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
FIXTURES = ROOT / "tests" / "fixtures"


def test_gate_blocks_fixed_high_and_critical_vulnerabilities_only() -> None:
    report = json.loads((FIXTURES / "trivy-vuln-report.json").read_text())
    stops = blocking(report, ignored=set())
    # HIGH with a fix blocks; CRITICAL without a fix is passed over (--ignore-unfixed); MEDIUM too.
    assert [f.id for f in stops] == ["CVE-2099-0001"]
    assert blocking(report, ignored={"CVE-2099-0001"}) == []
    assert [f.id for f in blocking(report, set(), ignore_unfixed=False)] == [
        "CVE-2099-0001",
        "CVE-2099-0002",
    ]


def test_any_secret_blocks_whatever_its_severity() -> None:
    report = {
        "Results": [
            {
                "Target": "/app/x",
                "Secrets": [{"RuleID": "generic", "Severity": "LOW", "Title": "t"}],
            }
        ]
    }
    assert [f.kind for f in blocking(report, set())] == ["secret"]


def test_trivyignore_needs_a_reason_and_an_expiry(tmp_path) -> None:
    good = tmp_path / "good"
    good.write_text(
        "# upstream fix lands in 1.0.2, tracked in OPS-12\nCVE-2099-0001 exp:2027-01-31\n"
    )
    [entry] = parse_trivyignore(good)
    assert (
        entry.id == "CVE-2099-0001"
        and entry.expires == date(2027, 1, 31)
        and "OPS-12" in entry.reason
    )
    for text, problem in [
        ("CVE-2099-0001 exp:2027-01-31\n", "no reason"),
        ("# a reason\nCVE-2099-0001\n", "no expiry"),
        ("# a reason\nnot an id!\n", "not `ID exp:YYYY-MM-DD`"),
    ]:
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(ScanError, match=problem):
            parse_trivyignore(bad)


def test_expired_entries_are_found(tmp_path) -> None:
    path = tmp_path / "ignore"
    path.write_text(
        "# waiting for upstream\nCVE-1 exp:2026-01-01\n\n# also waiting\nCVE-2 exp:2027-01-01\n"
    )
    entries = parse_trivyignore(path)
    assert [e.id for e in expired(entries, date(2026, 6, 1))] == ["CVE-1"]


def test_the_repository_trivyignore_is_valid() -> None:
    parse_trivyignore(ROOT / ".trivyignore")

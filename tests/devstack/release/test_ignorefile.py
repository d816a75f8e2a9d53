from datetime import date

import pytest

from devstack.release.ignorefile import IgnoreFileError, check, expired, parse
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

GOOD = """\
vulnerabilities:
  - id: CVE-2099-0001
    purls: ["pkg:pypi/example@1.0.0"]
    statement: >-
      upstream fix lands in 1.0.2,
      tracked in OPS-12
    expired_at: 2027-01-31
misconfigurations:
  - id: AVD-DS-0002
    paths: ["docs/Dockerfile"]
    statement: the docs image is built, never run
    expired_at: 2027-06-30
"""


def test_an_entry_carries_its_statement_expiry_and_scope(tmp_path) -> None:
    path = tmp_path / ".trivyignore.yaml"
    path.write_text(GOOD)
    vulnerability, misconfiguration = parse(path)
    assert vulnerability.id == "CVE-2099-0001"
    assert vulnerability.statement == "upstream fix lands in 1.0.2, tracked in OPS-12"
    assert vulnerability.expires == date(2027, 1, 31)
    assert vulnerability.purls == ("pkg:pypi/example@1.0.0",)
    assert (misconfiguration.section, misconfiguration.paths) == (
        "misconfigurations",
        ("docs/Dockerfile",),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("vulnerabilities:\n  - id: CVE-1\n    expired_at: 2027-01-01\n", "no `statement`"),
        ("vulnerabilities:\n  - id: CVE-1\n    statement: why\n", "no `expired_at` date"),
        (
            "vulnerabilities:\n  - id: CVE-1\n    statement: why\n    expired_at: someday\n",
            "no `expired_at` date",
        ),
        ("vulnerabilities:\n  - statement: why\n", "needs an `id`"),
        ("vulns:\n  - id: CVE-1\n", "unknown section 'vulns'"),
        (
            "vulnerabilities:\n  - id: CVE-1\n    statement: a\n    expired_at: 2027-01-01\n"
            "    purl: [x]\n",
            "unknown key(s) purl",
        ),
        (
            "vulnerabilities:\n  - id: CVE-1\n    statement: a\n    expired_at: 2027-01-01\n"
            "    purls: pkg:pypi/x@1\n",
            "`purls` must be a list",
        ),
        ("- just a list\n", "a mapping of"),
        ("vulnerabilities: [\n", "is not YAML"),
    ],
)
def test_an_entry_without_a_reason_or_an_expiry_is_refused(tmp_path, text, problem) -> None:
    path = tmp_path / ".trivyignore.yaml"
    path.write_text(text)
    with pytest.raises(IgnoreFileError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse(path)


def test_an_entry_expires_on_its_date_as_trivy_stops_applying_it(tmp_path) -> None:
    path = tmp_path / ".trivyignore.yaml"
    path.write_text(GOOD)
    entries = parse(path)
    assert expired(entries, date(2027, 1, 30)) == []
    assert [e.id for e in expired(entries, date(2027, 1, 31))] == ["CVE-2099-0001"]
    check(path, date(2027, 1, 30))
    with pytest.raises(
        IgnoreFileError, match=r"expired entries: CVE-2099-0001 \(expired 2027-01-31\)"
    ):
        check(path, date(2027, 2, 1))


def test_no_file_accepts_nothing(tmp_path) -> None:
    assert parse(tmp_path / ".trivyignore.yaml") == []


def test_the_repository_ignore_file_scopes_every_vulnerability_to_a_package() -> None:
    entries = parse(ROOT / ".trivyignore.yaml")
    assert entries, "the chromadb advisories are accepted here, with their statement"
    for entry in entries:
        assert entry.section != "vulnerabilities" or entry.purls, entry.id
        assert len(entry.statement) > 80, entry.id
    assert {e.id for e in entries} == {"CVE-2026-45829", "CVE-2026-45833", "GHSA-2wm9-hf6c-p5cr"}

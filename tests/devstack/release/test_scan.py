import pytest

from devstack.cluster.render import deployed_images
from devstack.core.names import CHROMA_IMAGE, CHROMA_PROXY_IMAGE, REDIS_IMAGE
from devstack.release.scan import ScanError, blocking, check_report, targets
from devstack.release.trivy import suppressed
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def vulnerability(ident, severity, fixed=""):
    return {
        "VulnerabilityID": ident,
        "PkgName": "examplelib",
        "InstalledVersion": "1.0.0",
        "FixedVersion": fixed,
        "Severity": severity,
        "Title": f"examplelib: {ident}",
    }


REPORT = {
    "SchemaVersion": 2,
    "Results": [
        {
            "Target": "Python",
            "Vulnerabilities": [
                vulnerability("CVE-2099-0001", "HIGH", fixed="1.0.1"),
                vulnerability("CVE-2099-0002", "CRITICAL"),  # no fix released
                vulnerability("CVE-2099-0003", "MEDIUM", fixed="1.0.2"),
            ],
            "ModifiedFindings": [
                {
                    "Type": "vulnerability",
                    "Status": "ignored",
                    "Statement": "unreachable as deployed",
                    "Source": ".trivyignore.yaml",
                    "Finding": vulnerability("CVE-2099-0004", "CRITICAL"),
                }
            ],
        }
    ],
}


def test_high_and_critical_block_whether_or_not_a_fix_exists() -> None:
    stops = blocking(REPORT)
    assert [(f.id, f.fixed) for f in stops] == [("CVE-2099-0001", "1.0.1"), ("CVE-2099-0002", "")]
    assert stops[0].package == "examplelib 1.0.0"


def test_accepted_findings_are_reported_with_their_statement() -> None:
    [accepted] = suppressed(REPORT)
    assert (accepted.id, accepted.status, accepted.statement) == (
        "CVE-2099-0004",
        "ignored",
        "unreachable as deployed",
    )


def test_any_secret_blocks_whatever_its_severity() -> None:
    report = {
        "SchemaVersion": 2,
        "Results": [
            {
                "Target": "/app/x",
                "Secrets": [{"RuleID": "generic", "Severity": "LOW", "Title": "t"}],
            }
        ],
    }
    assert [f.kind for f in blocking(report)] == ["secret"]


@pytest.mark.parametrize(
    ("report", "problem"),
    [
        ({"SchemaVersion": 2}, "has no Results"),
        ({"SchemaVersion": 2, "Results": None}, "has no Results"),
        ({"SchemaVersion": 2, "Findings": []}, "has no Results"),
        ({"SchemaVersion": 3, "Results": []}, "SchemaVersion 3, not 2"),
        ({}, "SchemaVersion None"),
        ([], "SchemaVersion None"),
    ],
)
def test_a_report_of_another_shape_fails_closed(report, problem) -> None:
    with pytest.raises(ScanError, match=problem):
        check_report(report, "vaia-agent:sha-0123456")


def test_a_clean_report_is_read() -> None:
    assert check_report({"SchemaVersion": 2, "Results": []}, "x") == {
        "SchemaVersion": 2,
        "Results": [],
    }


def test_every_image_the_deploy_runs_is_scanned_beside_the_agent() -> None:
    assert sorted(deployed_images(ROOT)) == sorted([REDIS_IMAGE, CHROMA_IMAGE, CHROMA_PROXY_IMAGE])
    scanned = targets("vaia-agent:sha-0123456", ROOT, {CHROMA_IMAGE: "vaia-standin/chroma:x"})
    assert scanned[0].ours and scanned[0].name == "vaia-agent:sha-0123456"
    assert sorted((t.name, t.local, t.ours) for t in scanned[1:]) == [
        (CHROMA_IMAGE, "vaia-standin/chroma:x", False),
        (CHROMA_PROXY_IMAGE, CHROMA_PROXY_IMAGE, False),
        (REDIS_IMAGE, REDIS_IMAGE, False),
    ]

import json
from datetime import UTC, datetime

import pytest

from devstack.release import vulndb
from devstack.release.vulndb import (
    VulnDbError,
    check_age,
    describe,
    max_age_days,
    read_records,
    record_trees,
)

pytestmark = pytest.mark.unit


def write_record(tree, ghsa, published="2024-02-01T00:00:00Z", **extra):
    folder = tree / "advisories" / "github-reviewed" / "2024" / "02" / ghsa
    folder.mkdir(parents=True, exist_ok=True)
    record = {"id": ghsa, "published": published, "affected": [], **extra}
    (folder / f"{ghsa}.json").write_text(json.dumps(record))
    return folder / f"{ghsa}.json"


def test_every_tree_in_the_ghsa_layout_is_found(tmp_path) -> None:
    write_record(tmp_path / "ghsa", "GHSA-aaaa-aaaa-aaaa")
    write_record(tmp_path / "transcribed", "GHSA-bbbb-bbbb-bbbb", "2026-05-18T00:00:00Z")
    (tmp_path / "notes").mkdir()
    trees = record_trees(tmp_path)
    assert [t.name for t in trees] == ["ghsa", "transcribed"]
    records = read_records(trees)
    assert [r.id for r in records] == ["GHSA-aaaa-aaaa-aaaa", "GHSA-bbbb-bbbb-bbbb"]
    assert max(r.published for r in records).isoformat() == "2026-05-18"
    # A tree given directly works too.
    assert record_trees(tmp_path / "ghsa") == [tmp_path / "ghsa"]


def test_a_folder_without_records_says_what_layout_is_expected(tmp_path) -> None:
    with pytest.raises(VulnDbError, match="no advisory records at"):
        record_trees(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VulnDbError, match="advisories/github-reviewed/YYYY/MM"):
        record_trees(tmp_path / "empty")


def test_a_broken_record_is_named(tmp_path) -> None:
    path = write_record(tmp_path / "t", "GHSA-aaaa-aaaa-aaaa")
    path.write_text("{not json")
    with pytest.raises(VulnDbError, match=r"GHSA-aaaa-aaaa-aaaa\.json is not a readable JSON"):
        read_records([tmp_path / "t"])
    path.write_text(json.dumps({"id": "GHSA-other", "published": "2024-01-01T00:00:00Z"}))
    with pytest.raises(VulnDbError, match="its `id` is not 'GHSA-aaaa-aaaa-aaaa'"):
        read_records([tmp_path / "t"])
    path.write_text(json.dumps({"id": "GHSA-aaaa-aaaa-aaaa", "published": "last spring"}))
    with pytest.raises(VulnDbError, match="no ISO 8601 `published` or `modified` date"):
        read_records([tmp_path / "t"])


def test_a_record_without_dates_counts_from_the_month_of_its_folder(tmp_path) -> None:
    path = write_record(tmp_path / "t", "GHSA-aaaa-aaaa-aaaa")
    path.write_text(
        json.dumps({"id": "GHSA-aaaa-aaaa-aaaa"})
    )  # published and modified are optional
    [record] = read_records([tmp_path / "t"])
    assert record.published.isoformat() == "2024-02-01"


def test_one_advisory_in_two_trees_must_be_the_same_record(tmp_path) -> None:
    write_record(tmp_path / "a", "GHSA-aaaa-aaaa-aaaa")
    write_record(tmp_path / "b", "GHSA-aaaa-aaaa-aaaa")
    assert len(read_records([tmp_path / "a", tmp_path / "b"])) == 1
    write_record(tmp_path / "b", "GHSA-aaaa-aaaa-aaaa", summary="changed")
    with pytest.raises(VulnDbError, match="in two trees with different contents"):
        read_records([tmp_path / "a", tmp_path / "b"])


def database(tmp_path, updated="2026-12-01T00:00:00Z", summary=True):
    db = tmp_path / "db"
    db.mkdir(parents=True)
    (db / "trivy.db").write_bytes(b"bolt")
    (db / "metadata.json").write_text(json.dumps({"Version": 2, "UpdatedAt": updated}))
    if summary:
        (db / vulndb.SUMMARY).write_text(
            json.dumps(
                {
                    "advisories": 65,
                    "newest": "2026-06-02",
                    "trees": ["ghsa", "transcribed"],
                    "builder": "trivy-db v0",
                    "built_at": updated,
                }
            )
        )
    return tmp_path


def test_a_database_is_described_with_its_origin_and_age(tmp_path) -> None:
    described = describe(database(tmp_path))
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    line = described.line(now)
    assert "65 advisories (newest 2026-06-02)" in line and "6.5 days old" in line
    check_age(described, 7, now)
    with pytest.raises(VulnDbError, match=r"6\.5 days old, over the limit of 6: a stale database"):
        check_age(described, 6, now)
    check_age(described, None, now)


def test_a_downloaded_database_is_described_too(tmp_path) -> None:
    described = describe(database(tmp_path, "2026-12-07T06:00:00.123456789Z", summary=False))
    assert "Trivy's download" in described.line(datetime(2026, 12, 7, 12, tzinfo=UTC))


def test_a_missing_or_unreadable_database_says_how_to_make_one(tmp_path) -> None:
    with pytest.raises(VulnDbError, match="build one with `invoke vulndb`"):
        describe(tmp_path)
    database(tmp_path)
    (tmp_path / "db" / "metadata.json").write_text("{}")
    with pytest.raises(VulnDbError, match="is not Trivy's database metadata"):
        describe(tmp_path)


def test_the_age_limit_is_seven_days_in_ci_unless_set(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(vulndb.MAX_AGE_SETTING, raising=False)
    assert max_age_days() is None
    monkeypatch.setenv("CI", "true")
    assert max_age_days() == 7
    monkeypatch.setenv(vulndb.MAX_AGE_SETTING, "2")
    assert max_age_days() == 2
    assert max_age_days(30) == 30
    assert max_age_days(0) is None
    monkeypatch.setenv(vulndb.MAX_AGE_SETTING, "soon")
    with pytest.raises(VulnDbError, match="is not a number of days"):
        max_age_days()

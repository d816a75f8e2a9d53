"""`invoke bench --first-answer`: what counts as a cited answer, the table against the baseline,
and a real round (`invoke dev` on a fresh copy of this checkout); its time is not asserted."""

import pytest

from devstack.perf.first_answer import (
    Checkout,
    Round,
    cited,
    first_answer_bench,
    first_answer_block,
    first_answer_table,
)

SOURCE = {"n": 1, "cited": True}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"covered": True, "degraded": [], "sources": [SOURCE]}, True),
        ({"covered": True, "degraded": ["knowledge_base_loading"], "sources": [SOURCE]}, False),
        ({"covered": False, "degraded": [], "sources": []}, False),
        ({"covered": True, "degraded": [], "sources": [{"n": 1, "cited": False}]}, False),
    ],
    ids=["cited", "still loading", "not covered", "nothing cited"],
)
def test_a_cited_answer_cites_the_runbooks_once_they_are_loaded(body, expected) -> None:
    assert cited(body) is expected


@pytest.mark.unit
def test_the_table_gives_each_checkouts_median_against_the_first() -> None:
    before = Checkout("c63b5ca (git archive)", [Round(1.4, t, 40) for t in (6.1, 6.7, 7.0)])
    after = Checkout("this checkout", [Round(1.3, t, 3) for t in (2.0, 2.3, 2.6)])
    columns, rows = first_answer_table([before, after])
    by_column = dict(zip(columns, rows[1], strict=True))
    assert by_column["first cited answer, median"] == "2.30 s"
    assert by_column["vs the first"] == "0.34x"
    assert by_column["rounds"] == "2.00, 2.30, 2.60"
    assert any("3 rounds each" in line for line in first_answer_block([before, after], "2 cores"))


@pytest.mark.integration
@pytest.mark.slow
def test_a_round_on_a_fresh_copy_of_this_checkout_reaches_a_cited_answer() -> None:
    [checkout] = first_answer_bench(None, rounds=1)
    [measured] = checkout.rounds
    assert 0 < measured.answering_s <= measured.cited_s

"""`invoke bench --gemini` and `--production`: the code is tested (short runs against real local
processes check the wiring, the parsing and the tables); the figures are not asserted."""

import pytest

from devstack.harness.services import cpu_seconds
from devstack.perf.gemini import (
    GeminiBench,
    LoadRow,
    ProductionBench,
    StreamRow,
    gemini_bench,
    gemini_block,
    gemini_table,
    production_bench,
    production_block,
    stream_table,
)
from devstack.perf.reports import write_block
from devstack.perf.service import Throughput


def _row(clients: int, rps: float, ideal: float | None) -> LoadRow:
    return LoadRow(clients, Throughput("infer", rps, 300, 400, 500, 0, int(rps * 10)), 4.2, ideal)


@pytest.mark.unit
def test_the_gemini_table_states_the_ideal_and_the_goals() -> None:
    result = GeminiBench(300, 10, [_row(20, 60, 66.7), _row(100, 200, 333.3)])
    columns, rows = gemini_table(result)
    assert len(columns) == len(rows[0])
    by_column = dict(zip(columns, rows[1], strict=True))
    assert by_column["of ideal"] == "0.60 of 333"
    assert by_column["CPU ms/req"] == "4.20"
    assert "0.6" in rows[1][3] and rows[0][3] == ""  # the throughput goal is for 100 clients
    block = gemini_block(result, "2 cores")
    assert any(line.startswith("| 100 | 200 |") for line in block)
    assert "300 ms" in block[1]


@pytest.mark.unit
def test_the_streaming_row_compares_the_first_token_with_the_stand_ins_first_chunk() -> None:
    stream = StreamRow(50, 400, 0, 262.0, 310.0, 1070.0, 1150.0, 200.4, 3.1)
    columns, [row] = stream_table(GeminiBench(300, 10, [], stream))
    by_column = dict(zip(columns, row, strict=True))
    assert by_column["p50 over it"] == "+62 ms" and by_column["goal"] == "<= 100 ms"
    assert by_column["answers/s"] == "40"
    assert stream_table(GeminiBench(300, 10, []))[1] == []  # no streaming row measured


@pytest.mark.unit
def test_the_production_table_compares_the_hit_with_bare() -> None:
    bare = Throughput("bare", 10000, 0.7, 1, 1.5, 0, 100000)
    result = ProductionBench(300, 10, bare, _row(8, 5000, None), _row(100, 210, 333.3))
    block = production_block(result, "2 cores")
    table = [line for line in block if line.startswith("| ")]
    assert len(table) == 5  # header, rule, bare, hit, miss
    assert "0.50 of bare" in table[3] and "0.63 of ideal" in table[4]


@pytest.mark.unit
def test_blocks_are_rewritten_in_place_and_new_ones_appended(tmp_path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# B\n\n<!-- invoke bench --service: start -->\nold\n"
                    "<!-- invoke bench --service: end -->\n\n## Notes\n")  # fmt: skip
    write_block(path, "--gemini", ["first"])
    write_block(path, "--gemini", ["second"])
    text = path.read_text()
    assert text.count("<!-- invoke bench --gemini: start -->") == 1
    assert "second" in text and "first" not in text
    assert "old" in text and "## Notes" in text


@pytest.mark.unit
def test_cpu_seconds_reads_this_process() -> None:
    import os

    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) >= before > 0


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_gemini_run_measures_the_agent() -> None:
    result = gemini_bench(seconds=2, latency_ms=50, clients=(4,), stream_clients=4)
    stream = result.stream
    assert stream is not None and stream.answered > 0 and stream.errors == 0
    # The stand-in's first chunk comes after 200 ms (5 chunks over 1 s); the agent adds to it.
    assert 150 < stream.first_chunk_ms < stream.first_token_p50_ms < stream.end_to_end_p50_ms
    assert any("first chunk" in line for line in gemini_block(result, "test"))
    [row] = result.rows
    assert row.load.requests > 0 and row.load.errors == 0
    assert row.ideal_rps == pytest.approx(80)
    assert row.cpu_ms_per_request > 0
    # Each request embeds the question and generates once; a few are in flight at the end.
    assert 2 <= (row.gemini_calls_per_request or 0) < 3
    assert any(line.startswith("| 4 |") for line in gemini_block(result, "test"))


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_production_run_hits_redis_and_chroma() -> None:
    result = production_bench(seconds=1, latency_ms=50, connections=2, miss_clients=4)
    assert result.bare.requests > 0 and result.bare.errors == 0
    assert result.hit.load.requests > 0 and result.hit.load.errors == 0
    assert result.miss.load.requests > 0 and result.miss.load.errors == 0
    assert result.miss.ideal_rps == pytest.approx(80)

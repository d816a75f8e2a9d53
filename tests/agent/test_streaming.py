"""The answer as it is written: the pieces joined are the answer, whatever Gemini's chunks look
like, and each piece is timed."""

import pytest

from agent.metrics import Metrics
from agent.streaming import AnswerStream

pytestmark = pytest.mark.unit


def written(stream: AnswerStream) -> list[str]:
    stream.close()
    return stream.ready()


def sample(metrics: Metrics, name: str, provider: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"provider": provider})


def test_live_pieces_join_to_the_stripped_answer_with_its_lead() -> None:
    stream = AnswerStream(Metrics())
    stream.lead_with("NOTICE\n\n")
    chunks = ["  \n", " Per the", " runbook: ", "\n", "undo it", ". [1]  \n "]
    for chunk in chunks:
        stream.delta(chunk, "gemini")
    pieces = written(stream)
    assert "".join(pieces) == "NOTICE\n\n" + "".join(chunks).strip()
    assert pieces[0] == "NOTICE\n\nPer the"  # the lead goes with the first piece of text
    assert stream.began


def test_a_whole_answer_is_written_a_line_at_a_time() -> None:
    stream = AnswerStream(Metrics())
    stream.whole("From the runbooks:\n- one [1]\n- two [2]", "offline")
    assert written(stream) == ["From the runbooks:\n", "- one [1]\n", "- two [2]"]


def test_each_piece_is_timed_from_the_request_then_from_the_one_before() -> None:
    metrics = Metrics()
    stream = AnswerStream(metrics, started=0.0)  # perf_counter's origin: a long first wait
    stream.delta("a", "gemini")
    stream.delta("b", "gemini")
    stream.delta("c", "gemini")
    ttft = "vaia_gen_ai_server_time_to_first_token_seconds"
    chunk = "vaia_gen_ai_server_time_per_output_chunk_seconds"
    assert sample(metrics, f"{ttft}_count", "gemini") == 1
    assert (sample(metrics, f"{ttft}_sum", "gemini") or 0) > 0
    assert sample(metrics, f"{chunk}_count", "gemini") == 2


def test_nothing_is_written_or_timed_for_whitespace_alone() -> None:
    metrics = Metrics()
    stream = AnswerStream(metrics)
    stream.delta("  \n ", "gemini")
    assert not stream.began and written(stream) == []
    count = "vaia_gen_ai_server_time_to_first_token_seconds_count"
    assert sample(metrics, count, "gemini") is None


@pytest.mark.anyio
async def test_a_reader_waits_for_the_next_piece_and_sees_the_end() -> None:
    stream = AnswerStream(Metrics())
    stream.delta("one", "gemini")
    stream.close()
    assert await stream.next() == "one"
    assert await stream.next() is None

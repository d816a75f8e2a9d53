"""POST /v1/agent/infer/stream: Server-Sent Events read from a real socket, the agent in its own
process and the Gemini stand-in in its own, streaming its chunks over time, failing part-way,
stalling; and the offline provider's stream, in process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from agent.api.schemas import ErrorBody, InferResponse
from tests.agent.api.conftest import api_settings
from tests.conftest import running_app
from tests.support.processes import wait_until
from tests.support.serving import agent_process, gemini_process

STREAM, INFER = "/v1/agent/infer/stream", "/v1/agent/infer"
QUESTION = "How do I roll back a Deployment?"


@dataclass
class Event:
    name: str
    data: dict
    at: float  # seconds after the request was sent


def events_of(lines: Iterator[str], started: float) -> Iterator[Event]:
    name = "message"
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield Event(name, json.loads(line[6:]), time.perf_counter() - started)
            name = "message"


def stream(client: httpx.Client, body: dict) -> list[Event]:
    started = time.perf_counter()
    with client.stream("POST", STREAM, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        return list(events_of(response.iter_lines(), started))


def answer_of(events: list[Event]) -> tuple[str, dict]:
    """The deltas joined, and the done event's data (which must come last, once)."""
    assert [e.name for e in events].count("done") == 1 and events[-1].name == "done"
    assert all(e.name == "delta" for e in events[:-1])
    return "".join(e.data["text"] for e in events[:-1]), events[-1].data


def same_answer(a: dict, b: dict) -> None:
    per_response = ("latency_ms", "request_id", "cached", "session_id")
    assert {k: v for k, v in a.items() if k not in per_response} == {
        k: v for k, v in b.items() if k not in per_response
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The stand-in streaming 5 chunks over 1.5 s, and an agent on it (module-wide: an agent
    takes a few seconds to start)."""
    tmp = tmp_path_factory.mktemp("stream")
    with (
        gemini_process(stream_chunks=5, stream_ms=1500) as gemini,
        agent_process(tmp, gemini, LLM_STREAM_STALL_SECONDS="1") as agent,
        httpx.Client(base_url=agent.url, timeout=30) as client,
    ):
        yield gemini, agent, client


@pytest.fixture
def gemini(served):
    standin = served[0]
    standin.control(stream_chunks=5, stream_ms=1500, stall_after=None, fail_after=None)
    return standin


@pytest.mark.integration
def test_geminis_chunks_reach_the_client_as_they_come_then_the_infer_json(served, gemini) -> None:
    _, agent, client = served
    events = stream(client, {"query": QUESTION, "session_id": "s-1"})
    text, done = answer_of(events)
    deltas = events[:-1]
    assert len(deltas) == 5  # one per Gemini chunk
    # The first piece came while Gemini was still writing (its chunks span 1.5 s).
    assert done["latency_ms"] / 1000 - deltas[0].at > 0.6
    assert text == done["answer"] and "[1]" in text
    InferResponse.model_validate(done)
    assert done["provider"] == "gemini" and done["cached"] is False and done["degraded"] == []
    assert done["session_id"] == "s-1"
    assert gemini.count("calls", "streamGenerateContent") == 1

    hit = stream(client, {"query": QUESTION})  # the answer was cached: streamed at once
    hit_text, hit_done = answer_of(hit)
    assert hit_done["cached"] is True and hit_text == hit_done["answer"] == text
    same_answer(hit_done, done)
    same_answer(client.post(INFER, json={"query": QUESTION}).json(), done)
    assert gemini.count("calls", "streamGenerateContent") == 1

    assert agent.metric("vaia_gen_ai_server_time_to_first_token_seconds_count", provider="gemini")
    assert agent.metric("vaia_gen_ai_server_time_to_first_token_seconds_count", provider="cache")
    chunks = agent.metric(
        "vaia_gen_ai_server_time_per_output_chunk_seconds_count", provider="gemini"
    )
    assert chunks and chunks >= 4


@pytest.mark.integration
def test_a_stream_that_fails_part_way_ends_with_an_error_event_and_is_not_cached(
    served, gemini
) -> None:
    _, _, client = served
    gemini.control(fail_after=2)
    events = stream(client, {"query": f"{QUESTION} (fails)"})
    assert [e.name for e in events] == ["delta", "delta", "error"]
    error = ErrorBody.model_validate(events[-1].data)
    assert error.error == "llm_unavailable" and error.request_id
    gemini.control(fail_after=None)
    _, done = answer_of(stream(client, {"query": f"{QUESTION} (fails)"}))
    assert done["cached"] is False and done["provider"] == "gemini"


@pytest.mark.integration
def test_a_stream_that_stalls_is_ended_after_llm_stream_stall_seconds(served, gemini) -> None:
    _, _, client = served
    gemini.control(stall_after=1)
    events = stream(client, {"query": f"{QUESTION} (stalls)"})
    assert [e.name for e in events] == ["delta", "error"]
    assert events[-1].data["error"] == "llm_timeout"
    # The stand-in would have held the stream an hour; the agent gave up after 1 s of silence.
    assert events[-1].at - events[0].at < 10


@pytest.mark.integration
def test_a_client_that_leaves_mid_stream_cancels_geminis_stream(served, gemini) -> None:
    _, agent, client = served
    gemini.control(stream_ms=6000)
    before = gemini.count("abandoned", "streamGenerateContent")
    started = time.perf_counter()
    with client.stream("POST", STREAM, json={"query": f"{QUESTION} (leaves)"}) as response:
        first = next(events_of(response.iter_lines(), started))
        assert first.name == "delta"
    # The connection is closed: the agent must close Gemini's stream long before its 6 s end.
    wait_until(
        lambda: gemini.count("abandoned", "streamGenerateContent") == before + 1, 4, "cancelled"
    )
    assert agent.metric("vaia_requests_cancelled_total", route=STREAM) == 1
    gemini.control(stream_ms=300)
    _, done = answer_of(stream(client, {"query": f"{QUESTION} (leaves)"}))
    assert done["cached"] is False


@pytest.mark.integration
def test_a_spent_quota_before_any_text_streams_the_offline_answer(tmp_path) -> None:
    with (
        gemini_process(quota_exhausted=True, retry_after="30") as gemini,
        agent_process(tmp_path, gemini) as agent,
        httpx.Client(base_url=agent.url, timeout=30) as client,
    ):
        text, done = answer_of(stream(client, {"query": QUESTION}))
        assert done["provider"] == "offline" and done["degraded"] == ["llm_unavailable"]
        assert text == done["answer"]


# --- the offline provider, in process -----------------------------------------------------------


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    with running_app(api_settings(tmp_path_factory.mktemp("offline"))) as c:
        yield c


@pytest.mark.integration
def test_the_offline_answer_streams_a_line_at_a_time_as_infer_answers_it(offline) -> None:
    body = {"query": "How do I roll back a Deployment?", "top_k": 3}
    text, done = answer_of(stream(offline, body))
    assert text == done["answer"] and text.count("\n") >= 1
    assert done["provider"] == "offline" and done["cached"] is False
    pieces = stream(offline, body)[:-1]
    assert len(pieces) == text.count("\n") + 1  # the cache hit, line by line too
    same_answer(offline.post(INFER, json=body).json(), done)


@pytest.mark.integration
def test_failures_before_any_text_are_answered_with_their_status(offline) -> None:
    too_long = offline.post(STREAM, json={"query": "x" * 4001})
    assert too_long.status_code == 413 and too_long.json()["error"] == "query_too_long"
    invalid = offline.post(STREAM, json={"query": ""})
    assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/json"


@pytest.mark.integration
def test_an_injected_fault_is_a_500_not_a_stream(tmp_path) -> None:
    with running_app(api_settings(tmp_path, fault_error_rate=1.0), wait_seed=False) as c:
        response = c.post(STREAM, json={"query": QUESTION})
    assert response.status_code == 500 and response.json()["error"] == "injected_fault"


@pytest.mark.integration
def test_the_stream_is_in_the_openapi_document_as_server_sent_events(offline) -> None:
    operation = offline.get("/openapi.json").json()["paths"][STREAM]["post"]
    content = operation["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    events = [
        e["properties"]["event"]["const"]
        for e in content["text/event-stream"]["itemSchema"]["oneOf"]
    ]
    assert events == ["delta", "done", "error"]
    assert {"413", "422", "429", "503"} <= set(operation["responses"])

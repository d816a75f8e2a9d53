"""The Gemini stand-in in its own process (as the serving tests and the benchmarks run it): its
modes (quota spent, streams that finish, stall or fail part-way, trickled answers), changed at
run time through /control, and its count of the calls its clients abandoned."""

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.harness.services import gemini_server

pytestmark = pytest.mark.integration
GENERATE = "/v1beta/models/m:generateContent"
STREAM = "/v1beta/models/m:streamGenerateContent?alt=sse"
BODY = {"contents": [{"role": "user", "parts": [{"text": '<source n="1">\nUndo it.\n</source>'}]}]}


@pytest.fixture
def standin() -> Iterator[str]:
    with gemini_server(latency_ms=50) as running:
        yield running.url


def control(url: str, **behaviour: object) -> None:
    httpx.post(url + "/control", json=behaviour).raise_for_status()


def stats(url: str) -> dict:
    return httpx.get(url + "/stats").json()


def events(url: str) -> list[dict]:
    with httpx.stream("POST", url + STREAM, json=BODY, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_a_spent_quota_answers_429_with_retry_after_until_it_is_restored(standin) -> None:
    control(standin, quota_exhausted=True, retry_after="30")
    spent = httpx.post(standin + GENERATE, json=BODY)
    assert spent.status_code == 429 and spent.headers["retry-after"] == "30"
    assert spent.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    control(standin, retry_after="")
    assert "retry-after" not in httpx.post(standin + STREAM, json=BODY).headers
    control(standin, quota_exhausted=False)
    assert httpx.post(standin + GENERATE, json=BODY).status_code == 200


def test_a_stream_sends_its_chunks_in_order_and_the_last_one_finishes(standin) -> None:
    control(standin, stream_chunks=4, stream_ms=200)
    chunks = events(standin)
    assert len(chunks) == 4
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "Per the runbook: Undo it. [1]"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None] * 3 + ["STOP"]


def test_a_stream_can_fail_part_way_with_an_error_event(standin) -> None:
    control(standin, stream_chunks=4, stream_ms=100, fail_after=2)
    chunks = events(standin)
    assert len(chunks) == 3 and chunks[-1]["error"]["code"] == 500


def test_a_stalled_stream_sends_nothing_more_until_the_client_gives_up(standin) -> None:
    control(standin, stream_chunks=4, stream_ms=100, stall_after=1)
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", standin + STREAM, json=BODY, timeout=1.5) as response,
    ):
        for _ in response.iter_lines():
            pass
    time.sleep(0.3)
    assert stats(standin)["abandoned"] == {"streamGenerateContent": 1}


def test_a_client_that_hangs_up_is_counted_as_having_abandoned_the_call(standin) -> None:
    control(standin, latency_ms=5000)
    with pytest.raises(httpx.ReadTimeout):  # the client gives up: it closes the connection
        httpx.post(standin + GENERATE, json=BODY, timeout=0.3)
    deadline = time.monotonic() + 4  # well before the 5 s answer
    while stats(standin)["abandoned"] != {"generateContent": 1} and time.monotonic() < deadline:
        time.sleep(0.05)
    counted = stats(standin)
    assert counted["abandoned"] == {"generateContent": 1} and counted["completed"] == {}


def test_a_trickled_answer_outlasts_a_read_timeout(standin) -> None:
    control(standin, trickle=True, latency_ms=0)
    received = 0
    with httpx.stream("POST", standin + GENERATE, json=BODY, timeout=0.5) as response:
        started = time.monotonic()
        for chunk in response.iter_bytes():  # each byte comes within the read timeout...
            received += len(chunk)
            if time.monotonic() - started > 1.5:
                break
    assert 0 < received < 50  # ...so only a deadline on the whole call ends it

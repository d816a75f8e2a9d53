"""A spent Gemini quota, with the stand-in in its own process answering every generate call 429
RESOURCE_EXHAUSTED and the agent in its own: the first 429 opens the breaker for Retry-After,
the questions meanwhile are answered offline at once without reaching Gemini, one probe goes
out when the cooldown ends, and an answering Gemini closes the breaker."""

import time

import httpx
import pytest

from tests.support.serving import agent_process, gemini_process

pytestmark = pytest.mark.integration
INFER = "/v1/agent/infer"
MODEL = {"model": "gemini-3.5-flash"}


def ask(url: str, n: int) -> tuple[dict, float]:
    started = time.perf_counter()
    response = httpx.post(
        url + INFER, json={"query": f"How do I roll back? (quota {n})"}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json(), time.perf_counter() - started


def test_a_spent_quota_is_asked_once_per_cooldown_and_answers_degrade_at_once(tmp_path) -> None:
    with (
        gemini_process(quota_exhausted=True, retry_after="3") as gemini,
        agent_process(tmp_path, gemini) as agent,  # the retry settings are the defaults
    ):
        answers = [ask(agent.url, n) for n in range(5)]
        for body, _ in answers:
            assert body["provider"] == "offline" and body["degraded"] == ["llm_unavailable"]
        # One generate call opened the breaker; the four questions after it never reached
        # Gemini (the retries of the old code made it 4 calls a question, 20 in all).
        assert gemini.count("calls") == 1
        # ... and waited for nothing (the old code slept through its backoff, 3-6 s each).
        assert max(seconds for _, seconds in answers[1:]) < 1.0
        assert agent.metric("vaia_llm_breaker_state", **MODEL) == 2  # open
        assert agent.metric("vaia_llm_breaker_rejected_total", **MODEL) == 4

        gemini.control(quota_exhausted=False)
        time.sleep(3.2)  # the Retry-After: the next question is the probe
        body, _ = ask(agent.url, 5)
        assert body["provider"] == "gemini" and body["degraded"] == []
        assert gemini.count("calls") == 2
        assert agent.metric("vaia_llm_breaker_state", **MODEL) == 0  # closed again
        body, _ = ask(agent.url, 6)
        assert body["provider"] == "gemini" and gemini.count("calls") == 3


def test_without_fallback_an_open_breaker_is_a_503_with_its_retry_after(tmp_path) -> None:
    with (
        gemini_process(quota_exhausted=True, retry_after="30") as gemini,
        agent_process(tmp_path, gemini, LLM_FALLBACK_OFFLINE="false") as agent,
    ):
        first = httpx.post(agent.url + INFER, json={"query": "roll back?"}, timeout=60)
        second = httpx.post(agent.url + INFER, json={"query": "roll back now?"}, timeout=60)
        assert gemini.count("calls") == 1
    assert first.status_code == second.status_code == 503
    assert first.json()["error"] == second.json()["error"] == "llm_rate_limited"
    assert 25 <= int(second.headers["retry-after"]) <= 30  # what is left of the cooldown

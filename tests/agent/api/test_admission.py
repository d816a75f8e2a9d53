"""Admission control with real sockets: the agent (its own process) carries at most
MAX_INFLIGHT_REQUESTS inference requests at once, waiting on the Gemini stand-in (its own
process); the requests beyond them are refused at once with 503 and Retry-After, while the
operations endpoints keep answering."""

import asyncio
import re

import httpx
import pytest

from devstack.perf.clients import ANSWERED, CLOSED_LOOP, INFER, REFUSED, question
from devstack.perf.loadtest import run_locust
from tests.support.serving import agent_process, gemini_process

pytestmark = pytest.mark.integration
LIMIT, CLIENTS = 4, 12


async def burst(url: str) -> tuple[list[tuple[str, int, httpx.Headers]], float | None]:
    """CLIENTS questions at once, then /health and /metrics while the admitted ones wait; the
    replies in the order they arrived, and the in-flight gauge as /metrics gave it."""
    arrived: list[tuple[str, int, httpx.Headers]] = []

    async def ask(path: str, body: dict | None = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:  # a connection each
            reply = await (client.get(path) if body is None else client.post(path, json=body))
        arrived.append((path, reply.status_code, reply.headers))
        return reply

    questions = [asyncio.ensure_future(ask(INFER, question("burst"))) for _ in range(CLIENTS)]
    await asyncio.sleep(1.0)  # the refusals are immediate; the admitted wait 3 s on Gemini
    await ask("/health")
    exposition = (await ask("/metrics")).text
    replies = await asyncio.gather(*questions)
    assert all(r.json() for r in replies)
    gauge = re.search(r"^vaia_inflight_requests (\S+)$", exposition, re.M)
    return arrived, float(gauge.group(1)) if gauge else None


def test_past_the_limit_inference_is_refused_at_once_and_operations_still_answer(tmp_path) -> None:
    with (
        gemini_process(latency_ms=3000) as gemini,
        agent_process(tmp_path, gemini, MAX_INFLIGHT_REQUESTS=str(LIMIT)) as agent,
    ):
        arrived, in_flight = asyncio.run(burst(agent.url))
        shed = agent.metric("vaia_requests_shed_total", route=INFER)
        logged = agent.metric("vaia_http_requests_total", route=INFER, status="503")
    statuses = [status for path, status, _ in arrived if path == INFER]
    assert sorted(statuses) == [200] * LIMIT + [503] * (CLIENTS - LIMIT)
    first_answer = next(
        i for i, (path, status, _) in enumerate(arrived) if path == INFER and status == 200
    )
    # Every refusal, /health and /metrics came back before any admitted question's answer.
    assert [path for path, _, _ in arrived[:first_answer]] == [INFER] * (CLIENTS - LIMIT) + [
        "/health",
        "/metrics",
    ]
    assert all(h["retry-after"] == "1" for _, status, h in arrived if status == 503)
    assert in_flight == LIMIT
    assert shed == logged == CLIENTS - LIMIT


def test_a_refusal_has_the_error_body_and_is_documented(tmp_path) -> None:
    from agent.api.admission import AdmissionControl
    from agent.api.schemas import ErrorBody
    from tests.conftest import running_app

    from .conftest import api_settings

    with running_app(api_settings(tmp_path, seed_on_startup=False), wait_seed=False) as c:
        admission = c.app.middleware_stack
        while not isinstance(admission, AdmissionControl):
            admission = admission.app
        admission.in_flight = admission.limit  # as if the process carried its limit
        refused = c.post(INFER, json={"query": "q"})
        admission.in_flight = 0
        document = c.get("/openapi.json").json()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    body = ErrorBody.model_validate(refused.json())
    assert body.error == "overloaded" and body.request_id == refused.headers["x-request-id"]
    assert (
        "MAX_INFLIGHT_REQUESTS"
        in document["paths"][INFER]["post"]["responses"]["503"]["description"]
    )


def test_as_many_clients_as_the_limit_are_never_refused(tmp_path) -> None:
    """A client that got its answer asks again at once on its keep-alive connection (locust's
    closed loop): its place must be free by then (it was freed only after the answer had gone,
    and the next question could come first)."""
    with (
        gemini_process(latency_ms=20) as gemini,
        agent_process(tmp_path, gemini, MAX_INFLIGHT_REQUESTS=str(LIMIT)) as agent,
    ):
        stats = run_locust(agent.url, LIMIT, LIMIT, 4, tmp_path / "locust", CLOSED_LOOP, ["Asker"])
    answered = stats.entries[ANSWERED]
    assert answered.count > 20 * LIMIT  # each client asked again and again
    assert REFUSED not in stats.entries and stats.failures == 0

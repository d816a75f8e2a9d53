"""Clients that hang up: real connections closed while the agent (its own process) waits on the
Gemini stand-in (its own process, counting the calls whose connection the agent closed)."""

import asyncio
import time

import httpx
import pytest

from agent.api.cancellation import CLIENT_GONE, WATCH_AFTER_SECONDS, CancelOnDisconnect
from agent.metrics import Metrics
from devstack.perf.clients import hang_up
from tests.support.processes import wait_until
from tests.support.serving import agent_process, gemini_process

pytestmark = pytest.mark.integration
INFER = "/v1/agent/infer"
QUESTION = "How do I roll back a Deployment?"
CLIENTS = 10


def test_clients_that_hang_up_cancel_their_gemini_calls_and_nothing_is_cached(tmp_path) -> None:
    with (
        gemini_process(latency_ms=3000) as gemini,
        agent_process(tmp_path, gemini) as agent,
    ):
        asyncio.run(hang_up(agent.url, CLIENTS, after_s=0.3, query=QUESTION))
        wait_until(
            lambda: agent.metric("vaia_requests_cancelled_total", route=INFER) == CLIENTS,
            10,
            "every request cancelled",
        )
        gemini.settle()
        time.sleep(0.3)
        assert gemini.count("completed") == 0  # the old code let every call run its 3 s
        assert gemini.count("abandoned") == gemini.count("calls") <= CLIENTS
        assert agent.metric("vaia_http_requests_total", route=INFER, status="499") == CLIENTS

        gemini.control(latency_ms=10)
        answer = httpx.post(agent.url + INFER, json={"query": QUESTION}, timeout=30).json()
        assert answer["provider"] == "gemini" and answer["degraded"] == []
        assert answer["cached"] is False  # no cancelled request stored its answer
        assert gemini.count("completed") == 1


def test_a_hang_up_between_tool_rounds_runs_no_later_round(tmp_path) -> None:
    """Gemini asks for a tool twice before answering, each round taking 1 s: a client gone
    during the second round leaves it abandoned and the third never asked."""
    with (
        gemini_process(latency_ms=1000, tool_rounds=2) as gemini,
        agent_process(tmp_path, gemini) as agent,
    ):
        asyncio.run(hang_up(agent.url, 1, after_s=1.5, query=QUESTION))
        wait_until(
            lambda: agent.metric("vaia_requests_cancelled_total", route=INFER) == 1, 10, "cancel"
        )
        time.sleep(2.5)  # the old code would have made the third round by now
        assert gemini.count("calls") == 2
        assert (gemini.count("completed"), gemini.count("abandoned")) == (1, 1)
        assert agent.metric("vaia_tool_calls_total", tool="search_knowledge") == 1


# --- the middleware on its own, with ASGI messages the test hands it ----------------------------


def _receiver(disconnect: asyncio.Event):
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive():
        if body:
            return body.pop()
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


async def _run(app, disconnect: asyncio.Event) -> tuple[dict, list[dict], Metrics]:
    metrics = Metrics()
    sent: list[dict] = []
    scope = {"type": "http", "path": INFER, "state": {}}

    async def send(message):
        sent.append(message)

    middleware = CancelOnDisconnect(app, metrics, frozenset({INFER}))
    await middleware(scope, _receiver(disconnect), send)
    return scope, sent, metrics


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_hang_up_cancels_the_route_where_it_waits() -> None:
    disconnect, reached = asyncio.Event(), []

    async def app(scope, receive, send):
        await receive()
        disconnect.set()  # the client goes away while the route waits on Gemini
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            reached.append("cancelled")
            raise
        reached.append("cached")

    scope, sent, metrics = await _run(app, disconnect)
    assert reached == ["cancelled"] and sent == []
    assert scope["state"][CLIENT_GONE] is True
    assert metrics.requests_cancelled.labels(INFER)._value.get() == 1


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_request_answered_in_full_is_not_counted_as_cancelled() -> None:
    disconnect = asyncio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        disconnect.set()  # what uvicorn says once the response is complete
        await asyncio.sleep(0.01)

    scope, sent, metrics = await _run(app, disconnect)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert CLIENT_GONE not in scope["state"]
    assert metrics.requests_cancelled.labels(INFER)._value.get() == 0


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_request_answered_at_once_is_never_watched() -> None:
    """A cache hit, say: nothing reads the connection after its body, no task is started."""
    reads = []
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive():
        reads.append("read")
        if body:
            return body.pop()
        await asyncio.sleep(30)  # a watcher would wait here for the client to go
        return {"type": "http.disconnect"}

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    before = len(asyncio.all_tasks())
    middleware = CancelOnDisconnect(app, Metrics(), frozenset({INFER}))
    await middleware({"type": "http", "path": INFER, "state": {}}, receive, _ignore)
    await asyncio.sleep(2 * WATCH_AFTER_SECONDS)
    assert reads == ["read"] and len(asyncio.all_tasks()) == before


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_cancellation_for_another_reason_is_not_a_hang_up() -> None:
    """The server shutting down, say: the request is cancelled, nothing is counted."""
    metrics = Metrics()
    started = asyncio.Event()

    async def app(scope, receive, send):
        await receive()
        started.set()
        await asyncio.sleep(30)

    middleware = CancelOnDisconnect(app, metrics, frozenset({INFER}))
    scope = {"type": "http", "path": INFER, "state": {}}
    request = asyncio.ensure_future(middleware(scope, _receiver(asyncio.Event()), _ignore))
    await started.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert CLIENT_GONE not in scope["state"]
    assert metrics.requests_cancelled.labels(INFER)._value.get() == 0


async def _ignore(message) -> None:
    return None

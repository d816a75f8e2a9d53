"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent import __version__
from agent.api.deps import components_of
from agent.api.schemas import HealthBody, ReadyBody, errors
from agent.service import KNOWLEDGE_LOADING

router = APIRouter(tags=["operations"])

# A readiness probe must answer fast; a dependency slower than this counts as down.
READY_CHECK_TIMEOUT = 1.5


@router.get("/health", response_model=HealthBody, responses=errors(431))
async def health() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never touches a dependency."""
    return {"status": "ok", "version": __version__}


async def _check(probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        # A deadline in this task, not wait_for's task of its own: under load every task waits
        # a turn of the busy event loop, and /ready must answer as fast as /health.
        async with asyncio.timeout(READY_CHECK_TIMEOUT):
            await probe()
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return {"status": "down", "error": reason[:300]}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get(
    "/ready",
    response_model=ReadyBody,
    responses={503: {"model": ReadyBody, "description": "Starting or stopping."}, **errors(431)},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: reports each dependency. 503 only when the service cannot serve at all
    (still starting, or shutting down); a dependency that is down makes it `degraded`."""
    if not getattr(request.app.state, "accepting", False):
        return JSONResponse({"status": "not_ready", "reason": "starting or stopping"}, 503)
    c = components_of(request)
    if c.state.backend == "redis":
        store_check, redis_check = await asyncio.gather(
            _check(c.store.heartbeat), _check(c.state.ping)
        )
    else:
        store_check, redis_check = await _check(c.store.heartbeat), INPROC
    checks: dict[str, Any] = {
        "chromadb": {**store_check, "mode": c.store.mode, "collection": c.store.collection_name},
        "redis": {**redis_check, "backend": c.state.backend},
        "llm": {"status": "up", "provider": c.llm.name, "model": c.llm.model},
        "knowledge_seed": c.seeding,
    }
    down = [name for name in ("chromadb", "redis") if checks[name]["status"] == "down"]
    # Reasons answers are degraded although every dependency is up.
    degraded = [KNOWLEDGE_LOADING] if c.service.knowledge_loading else []
    body = {
        "status": "degraded" if down or degraded else "ready",
        "down": down,
        "degraded": degraded,
        "checks": checks,
    }
    return JSONResponse(body, 200)


INPROC = {"status": "up", "note": "in-process (REDIS_URL unset)"}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(431),
    },
)
async def metrics(request: Request) -> Response:
    registry = components_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

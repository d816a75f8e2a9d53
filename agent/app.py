"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agent import __version__
from agent.api.admission import AdmissionControl
from agent.api.cancellation import CancelOnDisconnect
from agent.api.guard import V1Guard
from agent.api.middleware import RequestContextMiddleware
from agent.api.openapi import state_runtime_limits
from agent.api.routes import health, infer, knowledge, stream
from agent.api.routes.docs import mount_docs
from agent.config import Settings
from agent.heap import freeze_startup_objects
from agent.llm.base import LLMError
from agent.logs import configure_logging
from agent.metrics import Metrics
from agent.service import DocumentRejectedError, IngestError, InjectedFaultError
from agent.wiring import (
    Components,
    build_components,
    mark_seeding,
    seed_if_empty,
    warm_embedder,
)

log = logging.getLogger(__name__)


# The routes that answer questions: a client that hangs up cancels their work.
INFERENCE_PATHS = frozenset({"/v1/agent/infer", "/v1/agent/infer/stream"})

# Error codes of the statuses Starlette raises by itself (unknown path, wrong method, ...).
_HTTP_ERRORS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def _error(request: Request, status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    body = {
        "detail": detail,
        "error": error,
        "request_id": getattr(request.state, "request_id", None),
    }
    return JSONResponse({**body, **extra}, status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMError)
    async def llm_error(request: Request, exc: LLMError) -> JSONResponse:
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
        return _error(request, exc.status, exc.kind, str(exc), headers=headers)

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        stored = "some documents were stored" if exc.written else "documents were not stored"
        return _error(
            request,
            503,
            exc.kind,
            f"{stored}: {exc}. Retry the request; it is idempotent.",
            written=exc.written,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DocumentRejectedError)
    async def rejected(request: Request, exc: DocumentRejectedError) -> JSONResponse:
        errors = [{"loc": ["body", "documents", exc.index], "msg": str(exc), "type": "rejected"}]
        return _error(
            request,
            422,
            "invalid_request",
            f"documents[{exc.index}] was refused by the knowledge store",
            errors=errors,
            written=exc.written,
        )

    @app.exception_handler(InjectedFaultError)
    async def injected(request: Request, exc: InjectedFaultError) -> JSONResponse:
        return _error(request, 500, "injected_fault", str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = getattr(exc, "error", None) or _HTTP_ERRORS.get(exc.status_code, "http_error")
        return _error(request, exc.status_code, error, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echoing inputs back could reflect a 2 MB body; locations and messages are enough.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return _error(request, 422, "invalid_request", "request validation failed", errors=errors)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(request, 500, "internal_error", "internal error; see logs by request_id")


def create_app(settings: Settings | None = None, components: Components | None = None) -> FastAPI:
    """Build the app. Tests pass `components` to swap implementations."""
    settings = settings or (components.settings if components else Settings())
    configure_logging(settings.log_level)
    metrics = components.metrics if components else Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = components or build_components(settings, metrics)
        app.state.components = c
        mark_seeding(c, "not started" if settings.seed_on_startup else "disabled")
        seeding = asyncio.create_task(seed_if_empty(c)) if settings.seed_on_startup else None
        # The offline model loads beside the seed (which takes the runbooks' vectors computed
        # ahead, agent/knowledge/vectors.py), not at the first question.
        warming = asyncio.create_task(warm_embedder(c))
        freeze_startup_objects()
        if seeding is not None:  # the seed imports and opens the store: those objects too
            seeding.add_done_callback(lambda _: freeze_startup_objects())
        app.state.accepting = True
        log.info(
            "agent started",
            extra={"provider": c.llm.name, "store": c.store.mode, "state": c.state.backend},
        )
        try:
            yield
        finally:
            app.state.accepting = False
            for task in (seeding, warming):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await c.aclose()
            log.info("agent stopped")

    app = FastAPI(
        # The agent's metrics are its own (/metrics, Prometheus). FastAPI's OpenTelemetry looks
        # for configured providers on every request otherwise (environment variables included).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="VAIA agent",
        version=__version__,
        description="A vertical AI agent for platform and SRE runbooks.",
        lifespan=lifespan,
        # /docs is served from packaged assets (routes/docs.py); ReDoc's page would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Added innermost first: the request context wraps everything, then admission (a refusal
    # costs nothing more), then cancellation of what was admitted, then auth and the rate limit.
    app.add_middleware(V1Guard)
    app.add_middleware(CancelOnDisconnect, metrics=metrics, paths=INFERENCE_PATHS)
    app.add_middleware(
        AdmissionControl,
        limit=settings.max_inflight_requests,
        metrics=metrics,
        paths=INFERENCE_PATHS,
    )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    _install_error_handlers(app)
    state_runtime_limits(app, settings)
    app.include_router(infer.router)
    app.include_router(stream.router)
    app.include_router(knowledge.router)
    app.include_router(health.router)
    mount_docs(app)
    return app

"""POST /v1/agent/infer."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from agent.api.deps import ApiError, V1Guard, components_of
from agent.api.schemas import InferRequest, InferResponse, errors

router = APIRouter(prefix="/v1/agent", tags=["agent"], dependencies=V1Guard)


@router.post(
    "/infer",
    response_model=InferResponse,
    responses=errors(400, 401, 413, 422, 429, 431, 500, 502, 503, 504),
)
async def infer(body: InferRequest, request: Request) -> dict[str, Any]:
    """Answer a question from the knowledge base, citing the passages used."""
    started = time.perf_counter()
    components = components_of(request)
    settings, service = components.settings, components.service
    if len(body.query) > settings.max_query_chars:
        raise ApiError(
            413,
            "query_too_long",
            f"query is {len(body.query)} characters; the limit is "
            f"MAX_QUERY_CHARS={settings.max_query_chars}",
        )
    answer = await service.infer(body.query, body.session_id, body.top_k)
    # A plain dict: FastAPI validates it against InferResponse once, on the way out.
    return {
        **answer.model_dump(),
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "request_id": request.state.request_id,
        "session_id": body.session_id,
    }

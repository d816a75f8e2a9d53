"""POST /v1/agent/infer."""

from __future__ import annotations

import json
import re
import time

from fastapi import APIRouter, Request, Response

from agent.api.deps import ApiError, components_of
from agent.api.schemas import InferRequest, InferResponse, errors
from agent.config import Settings
from agent.domain import Answer
from agent.service import CachedAnswer

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post(
    "/infer",
    response_model=InferResponse,
    responses=errors(400, 401, 413, 422, 429, 431, 500, 502, 503, 504),
)
async def infer(body: InferRequest, request: Request) -> Response:
    """Answer a question from the knowledge base, citing the passages used."""
    started = time.perf_counter()
    components = components_of(request)
    check_query(body, components.settings)
    answer = await components.service.answer(body.query, body.session_id, body.top_k)
    content = answer_body(answer, started, request.state.request_id, body.session_id)
    return Response(content, 200, media_type="application/json")


def check_query(body: InferRequest, settings: Settings) -> None:
    if len(body.query) > settings.max_query_chars:
        raise ApiError(
            413,
            "query_too_long",
            f"query is {len(body.query)} characters; the limit is "
            f"MAX_QUERY_CHARS={settings.max_query_chars}",
        )


def answer_body(
    answer: Answer | CachedAnswer, started: float, request_id: str, session_id: str | None
) -> bytes:
    """The InferResponse JSON, written here, not by FastAPI from the response_model (which
    stays, for the OpenAPI document): an Answer is a validated model already, and a cache hit is
    the JSON it was stored as, sent without parsing it (tests/agent/api/test_infer_bodies.py
    checks the bodies against InferResponse)."""
    if isinstance(answer, Answer):
        fields = answer.model_dump_json()
        per_response = ""
    else:
        fields = answer.fields_json
        per_response = '"cached":true,"degraded":[],'
    latency = round((time.perf_counter() - started) * 1000, 2)
    rid = _json_string(request_id)
    session = "null" if session_id is None else _json_string(session_id)
    tail = f'"latency_ms":{latency!r},"request_id":{rid},"session_id":{session}}}'
    return f"{fields[:-1]},{per_response}{tail}".encode()


_PLAIN = re.compile(r"[A-Za-z0-9._:-]*")  # nothing JSON escapes: request ids, session ids


def _json_string(value: str) -> str:
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value)

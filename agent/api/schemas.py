"""Request and response bodies of the public API, built on the shapes of `agent.domain`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agent.domain import VISIBLE_PATTERN, Answer, DocumentIn, Strict, VisibleStr, json_number

SESSION_ID = r"^[A-Za-z0-9._:-]{1,128}$"


class InferRequest(Strict):
    query: VisibleStr = Field(
        min_length=1,
        description="The question, with at least one visible character. Its length limit is "
        "MAX_QUERY_CHARS (413 beyond it).",
        examples=["How do I roll back a bad deploy?"],
        json_schema_extra={"pattern": VISIBLE_PATTERN},
    )
    session_id: str | None = Field(
        None, pattern=SESSION_ID, description="Keeps conversation memory across requests."
    )
    top_k: int | None = Field(None, ge=1, le=20, description="Passages to retrieve.")

    # JSON Schema's integer is any number without a fraction (8.0 is one), never a string or a
    # boolean: pydantic's lax int, minus its string and bool coercions.
    _top_k_is_a_number = field_validator("top_k", mode="before")(json_number)


class InferResponse(Answer):
    latency_ms: float
    request_id: str
    session_id: str | None = None


class IngestRequest(Strict):
    documents: list[DocumentIn] = Field(min_length=1)


class IngestedDocument(BaseModel):
    id: str
    chunks: int


class IngestResponse(BaseModel):
    documents: list[IngestedDocument]
    collection: str
    embedder: str


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, then the path of the field.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response: a message, a machine-readable code, the request id."""

    detail: str = Field(description="What went wrong, for a person.")
    error: str = Field(
        description="What went wrong, for a program: invalid_request, unauthorized, "
        "rate_limited, too_many_auth_failures, duplicate_document_ids, body_too_large, "
        "query_too_long, document_too_long, too_many_documents, headers_too_large, "
        "store_unavailable, cache_unavailable, overloaded, llm_*, internal_error, ..."
    )
    request_id: str | None = None
    errors: list[ErrorItem] | None = Field(
        None, description="422 invalid_request: one entry per invalid field."
    )
    written: list[str] | None = Field(
        None, description="Ingestion errors: ids of the documents stored before it failed."
    )


class HealthBody(BaseModel):
    status: Literal["ok"]
    version: str


class ReadyBody(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    down: list[str] = Field(default_factory=list, description="Dependencies that are down.")
    degraded: list[str] = Field(
        default_factory=list,
        description="Why answers are degraded although dependencies are up: "
        "knowledge_base_loading.",
    )
    checks: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = Field(None, description="not_ready: why.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: each status with the one error body."""
    return {status: {"model": ErrorBody, "description": _REASONS[status]} for status in statuses}


_REASONS = {
    400: "The body is not UTF-8.",
    401: "Missing or invalid bearer key (when AGENT_API_KEYS is set).",
    409: "The same document id appears twice in the request.",
    413: "Over a size limit: MAX_BODY_BYTES, MAX_QUERY_CHARS, MAX_DOCUMENT_CHARS or "
    "MAX_DOCUMENTS_PER_REQUEST.",
    422: "Invalid request: `errors` names each invalid field.",
    429: "Rate limited (RATE_LIMIT_PER_MINUTE) or too many failed authentications "
    "(AUTH_FAILURES_PER_MINUTE); see Retry-After.",
    431: "Request headers over MAX_HEADER_BYTES.",
    500: "Internal error; see the logs by request_id.",
    502: "The LLM rejected the key or the request (LLM_FALLBACK_OFFLINE does not hide it).",
    503: "A dependency is unavailable, or the process is answering MAX_INFLIGHT_REQUESTS "
    "requests already (`overloaded`); retry after Retry-After.",
    504: "The LLM timed out (with LLM_FALLBACK_OFFLINE=false).",
}

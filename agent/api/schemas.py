"""Request and response bodies of the public API, built on the shapes of `agent.domain`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.domain import VISIBLE_PATTERN, Answer, DocumentIn, Strict, VisibleStr

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


class ErrorBody(BaseModel):
    detail: str
    error: str
    request_id: str | None = None

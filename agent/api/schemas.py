"""Request and response bodies of the public API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.knowledge.chunking import DOCUMENT_ID

SESSION_ID = r"^[A-Za-z0-9._:-]{1,128}$"
RESERVED_METADATA = frozenset({"document_id", "chunk_index", "title", "section", "source"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class InferRequest(Strict):
    query: str = Field(
        description="The question. Its length limit is MAX_QUERY_CHARS (413 beyond it).",
        examples=["How do I roll back a bad deploy?"],
    )
    session_id: str | None = Field(
        None, pattern=SESSION_ID, description="Keeps conversation memory across requests."
    )
    top_k: int | None = Field(None, ge=1, le=20, description="Passages to retrieve.")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must not be empty")
        return value


class SourceOut(BaseModel):
    n: int = Field(description="The number the answer cites as [n].")
    document_id: str
    title: str
    source: str
    section: str
    score: float
    snippet: str
    cited: bool = Field(description="Whether the answer cites this passage.")


class ToolCallOut(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any
    ok: bool


class InferResponse(BaseModel):
    answer: str
    sources: list[SourceOut]
    tool_calls: list[ToolCallOut]
    provider: str
    model: str
    cached: bool
    latency_ms: float
    request_id: str
    session_id: str | None = None
    degraded: list[str] = Field(
        default_factory=list,
        description="Why the answer is degraded: retrieval_unavailable, llm_unavailable.",
    )


MetadataValue = str | int | float | bool


class DocumentIn(Strict):
    id: str | None = Field(
        None,
        pattern=DOCUMENT_ID.pattern,
        description="Stable id; re-ingesting the same id replaces the document. "
        "Defaults to a slug of `source`, else of `title`.",
    )
    title: str = Field(min_length=1, max_length=300)
    text: str = Field(description="Markdown or plain text. Limit: MAX_DOCUMENT_CHARS (413).")
    source: str | None = Field(None, max_length=500)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=20)

    @field_validator("text", "title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("metadata")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        reserved = RESERVED_METADATA & value.keys()
        if reserved:
            raise ValueError(f"metadata keys reserved by the store: {sorted(reserved)}")
        for key, item in value.items():
            if not key or len(key) > 64:
                raise ValueError("metadata keys must be 1 to 64 characters")
            if isinstance(item, str) and len(item) > 1000:
                raise ValueError(f"metadata value of {key!r} is longer than 1000 characters")
        return value


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

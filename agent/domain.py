"""The agent's data, one shape each: documents as they are ingested, passages as they are
retrieved, conversation turns, and answers with their sources and tool calls.

The API's request and response bodies are built from these models (no parallel copies), so a
field and its constraints are defined once. Internal-only shapes (Passage, Turn) stay plain
dataclasses: they never cross the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")

MetadataValue = str | int | float | bool
# Keys the store writes on every chunk; a document's own metadata must not overwrite them.
RESERVED_METADATA = frozenset(
    {"document_id", "chunk_index", "title", "section", "source", "version", "chunk_count"}
)


def slugify(value: str) -> str:
    slug = _SLUG_DROP.sub("-", value.casefold()).strip("-")
    return slug[:200] or "document"


class Strict(BaseModel):
    """Input models: unknown fields and non-finite numbers are client errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DocumentIn(Strict):
    """A document to ingest: from the API, or from the shipped corpus."""

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

    @property
    def document_id(self) -> str:
        return self.id or slugify(self.source or self.title)


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    document_id: str
    title: str
    source: str
    section: str
    text: str
    score: float  # cosine similarity, higher is closer


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any
    ok: bool = True


class Source(BaseModel):
    n: int = Field(description="The number the answer cites as [n].")
    document_id: str
    title: str
    source: str
    section: str
    score: float
    snippet: str
    cited: bool = Field(description="Whether the answer cites this passage.")


class Answer(BaseModel):
    answer: str
    sources: list[Source]
    tool_calls: list[ToolCall]
    provider: str
    model: str
    cached: bool = False
    degraded: list[str] = Field(
        default_factory=list,
        description="Why the answer is degraded: retrieval_unavailable, llm_unavailable.",
    )

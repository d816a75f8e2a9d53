"""The agent's data, one shape each: documents as they are ingested, passages as they are
retrieved, conversation turns, and answers with their sources and tool calls.

The API's request and response bodies are built from these models (no parallel copies), so a
field and its constraints are defined once. Internal-only shapes (Passage, Turn) stay plain
dataclasses: they never cross the API.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")

# Keys the store writes on every chunk; a document's own metadata must not overwrite them.
RESERVED_METADATA = frozenset(
    {"document_id", "chunk_index", "title", "section", "source", "version", "chunk_count"}
)
# What Chroma stores as a metadata key without surprises: no leading '#' or '$' (its query
# operators), no ':' (its reserved 'chroma:' keys), nothing invisible.
METADATA_KEY = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
# Chroma keeps numbers as 64-bit integers or floats. A round bound within both, exact as a
# float too: a bound near 2**63 would round onto it, and a float at the bound would read back
# as an integer beyond it.
NUMBER_LIMIT = 10**18
METADATA_STRING_MAX = 1000


def _invisible_ranges() -> str:
    """The BMP characters that show nothing: whitespace, controls, format characters (zero-width,
    bidi) and private use, as a regex class body of \\uXXXX ranges. Surrogates are left out:
    a pair is one character once decoded, a lone one is refused by valid_unicode, and regex
    translators (ECMA to Python) mangle surrogate ranges."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        ch = chr(code)
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Zs", "Zl", "Zp"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


# "Contains a visible character", as one regex that the OpenAPI schema states and the validator
# applies (Python's re, as schema-driven test generators do), so both always agree.
VISIBLE_PATTERN = f"[^{_invisible_ranges()}]"
_VISIBLE = re.compile(VISIBLE_PATTERN)


def slugify(value: str) -> str:
    slug = _SLUG_DROP.sub("-", value.casefold()).strip("-")
    return slug[:200] or "document"


def valid_unicode(value: str) -> str:
    """JSON can carry a lone surrogate (\\ud800); no store or encoder can."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"must be valid Unicode: lone surrogate at position {exc.start}"
            ) from None
    return value


def visible(value: str) -> str:
    if _VISIBLE.search(value) is None:
        raise ValueError(
            "must contain a visible character (not only spaces, control or invisible characters)"
        )
    return value


def _within_limit(value: object) -> object:
    # Before validation: a huge integer would otherwise be coerced to a float and compared as one.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:  # type: ignore[operator]
        raise ValueError("numbers must be between -1e18 and 1e18")
    return value


def json_number(value: object) -> object:
    """A JSON number (None passes: optional fields), not a string or a boolean."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a JSON number")
    return value


def _metadata_key(key: str) -> str:
    if key in RESERVED_METADATA:
        raise ValueError(f"metadata key {key!r} is reserved by the store")
    return key


UnicodeStr = Annotated[str, AfterValidator(valid_unicode)]
VisibleStr = Annotated[str, AfterValidator(valid_unicode), AfterValidator(visible)]
MetadataKey = Annotated[str, StringConstraints(pattern=METADATA_KEY), AfterValidator(_metadata_key)]
# Each member strict: in lax mode a string too long for `str` would be taken by `int` or `float`
# when it reads as a number ("000...0" became 0), and "true" by `bool`; JSON's types decide.
MetadataValue = Annotated[
    StrictBool
    | Annotated[StrictInt, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT)]
    | Annotated[StrictFloat, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT)]
    | Annotated[StrictStr, StringConstraints(max_length=METADATA_STRING_MAX)],
    BeforeValidator(_within_limit),
    AfterValidator(lambda v: valid_unicode(v) if isinstance(v, str) else v),
]
# Stated whole, because pydantic would describe pattern-constrained keys as patternProperties,
# which lets any other key through.
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 20,
    "propertyNames": {"pattern": METADATA_KEY, "not": {"enum": sorted(RESERVED_METADATA)}},
    "additionalProperties": {
        "anyOf": [
            {"type": "boolean"},
            {"type": "integer", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT},
            {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT},
            {"type": "string", "maxLength": METADATA_STRING_MAX},
        ]
    },
    "description": "Up to 20 keys (letters, digits, '_', '.', '-'; not the store's own "
    f"{', '.join(sorted(RESERVED_METADATA))}); values are booleans, numbers between -1e18 "
    f"and 1e18, or strings of at most {METADATA_STRING_MAX} characters.",
}


def _replace_with(stated: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def replace(schema: dict[str, Any]) -> None:
        schema.clear()
        schema.update(stated)

    return replace


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
    title: VisibleStr = Field(
        min_length=1, max_length=300, json_schema_extra={"pattern": VISIBLE_PATTERN}
    )
    text: VisibleStr = Field(
        min_length=1,
        description="Markdown or plain text, with at least one visible character. "
        "Limit: MAX_DOCUMENT_CHARS (413).",
        json_schema_extra={"pattern": VISIBLE_PATTERN},
    )
    source: UnicodeStr | None = Field(None, max_length=500)
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=20, json_schema_extra=_replace_with(METADATA_SCHEMA)
    )

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
    covered: bool = Field(
        True,
        description="Whether the runbooks cover the question. false: no passage reached the "
        "relevance floor (RELEVANCE_FLOOR), so the answer says the runbooks do not cover it and "
        "`sources` is empty; or nothing could be retrieved, and `degraded` says why.",
    )
    cached: bool = False
    degraded: list[str] = Field(
        default_factory=list,
        description="Why the answer is degraded: knowledge_base_loading, "
        "retrieval_unavailable, llm_unavailable. Degraded answers are never cached.",
    )

"""Plain data shared across modules: retrieved passages and conversation turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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

"""Markdown-aware chunking with stable ids.

A chunk's index is its position in the document; the store adds the write's version to the id
(`<document id>::<version>::<index>`), so a re-ingest writes a new version beside the old one and
then deletes the old one, instead of overwriting chunks in place.
Chunks never straddle headings; paragraphs and code blocks are kept whole where they fit, and
consecutive chunks of a section overlap by about `overlap` characters so a step that spans a
boundary is still found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.domain import DOCUMENT_ID, slugify

__all__ = ["DOCUMENT_ID", "Chunk", "chunk_document", "slugify"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    index: int
    title: str
    section: str
    text: str

    def embedding_text(self) -> str:
        """What gets embedded: the headings give a short passage its topic."""
        heading = f"{self.title} — {self.section}" if self.section else self.title
        return f"{heading}\n{self.text}"


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """Split markdown into (heading path, paragraphs); fenced code blocks stay one paragraph."""
    sections: list[tuple[str, list[str]]] = []
    path: list[str] = []
    paragraphs: list[str] = []
    current: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        if current:
            paragraphs.append("\n".join(current).strip())
            current.clear()

    def end_section() -> None:
        end_paragraph()
        if paragraphs:
            sections.append((" > ".join(path), [p for p in paragraphs if p]))
            paragraphs.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            current.append(line)
            if not in_fence:
                end_paragraph()
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            end_section()
            level = len(heading.group(1))
            # The document's H1 is its title; the path holds the H2..H6 above this section.
            del path[max(level - 2, 0) :]
            if level > 1:
                path.append(heading.group(2))
        elif not line.strip() and not in_fence:
            end_paragraph()
        else:
            current.append(line)
    end_section()
    return sections


def _split_long(paragraph: str, size: int) -> list[str]:
    """Cut a paragraph longer than `size` at line ends, so that list items stay whole (the
    second sentence of an item needs its first), then a longer line at sentence ends, and
    hard-cut any longer sentence."""
    pieces: list[str] = []
    for line in paragraph.split("\n"):
        for sentence in [line] if len(line) <= size else _SENTENCE_END.split(line):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence.strip():
                pieces.append(sentence.strip())
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The whole sentences (or list items) within the last ~`overlap` characters of a chunk.

    Starting at a sentence boundary keeps fragments out of the overlap, so an extractive answer
    never quotes half a sentence."""
    if overlap <= 0 or len(text) <= overlap:
        return ""
    window_start = len(text) - overlap
    for match in _BOUNDARY.finditer(text, window_start):
        return text[match.end() :].strip()
    return ""


def chunk_document(
    document_id: str, title: str, text: str, size: int = 900, overlap: int = 150
) -> list[Chunk]:
    if not DOCUMENT_ID.match(document_id):
        raise ValueError(f"invalid document id {document_id!r}")
    bodies: list[tuple[str, str]] = []
    for section, paragraphs in _sections(text):
        pieces = [
            piece for p in paragraphs for piece in ([p] if len(p) <= size else _split_long(p, size))
        ]
        buffer = ""
        for piece in pieces:
            joined = f"{buffer}\n\n{piece}" if buffer else piece
            if len(joined) <= size:
                buffer = joined
                continue
            bodies.append((section, buffer))
            carry = _tail(buffer, overlap)
            buffer = f"{carry}\n{piece}" if carry and len(carry) + len(piece) + 3 <= size else piece
        if buffer:
            bodies.append((section, buffer))
    if not bodies and text.strip():
        # Headings only: keep the text itself, so that no document is ever stored empty.
        bodies = [("", piece) for piece in _split_long(" ".join(text.split()), size)]
    return [
        Chunk(
            id=f"{document_id}::{index:04d}",
            document_id=document_id,
            index=index,
            title=title,
            section=section,
            text=body,
        )
        for index, (section, body) in enumerate(bodies)
    ]

"""The answer evaluation of the agent's retrieval: do the passages it finds fit the questions?

The evaluation set (`evaluation.yaml` beside this module) holds questions as people ask them,
each with the runbook sections that answer it, and questions the runbooks cannot answer. For an
embedder, every chunk of the shipped runbooks is embedded as the store embeds it, every question
is ranked against them, and the ranking is scored at a relevance floor:

- a question whose best passage scores below the floor is refused (the agent says the runbooks
  do not cover it and cites nothing): right for an unanswerable question, a miss for the others;
- hit@k: the share of answerable questions, not refused, with a right section among the first k
  distinct sections it retrieves (a section's chunks count once, at its best score).

`rank` takes any search function; `index_search` is an exact cosine search in memory (what the
unit tier runs), `store_search` the agent's own KnowledgeStore on an embedded Chroma (what the
benchmark runs). Scoring and calibration are pure functions of the rankings. The relevance
floors of agent/embeddings/floors.py are calibrated here; `invoke bench --answers` reports it
(devstack/perf/answers.py).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.domain import DocumentIn, Passage
from agent.embeddings.base import Embedder
from agent.knowledge.chunking import Chunk, chunk_document
from agent.knowledge.corpus import shipped_documents

EVAL_SET = Path(__file__).with_name("evaluation.yaml")
# Passages retrieved per question: enough for the first few distinct sections.
DEPTH = 12
KS = (1, 2, 3, 4, 5)
# The share of answerable questions a calibrated floor keeps (see `calibrate`).
KEEP = 0.95

Search = Callable[[str, int], Awaitable[list[Passage]]]


class EvalSetError(ValueError):
    """The evaluation file is malformed or names a section the runbooks do not have."""


@dataclass(frozen=True)
class Case:
    question: str
    answer: tuple[str, ...]  # `<document id> > <section>` keys; empty: the runbooks cannot answer

    @property
    def answerable(self) -> bool:
        return bool(self.answer)


@dataclass(frozen=True)
class Ranked:
    """A question's distinct sections, best first, each at its best passage's score."""

    case: Case
    sections: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def best(self) -> float:
        return self.scores[0] if self.scores else -1.0

    def rank_of_answer(self) -> int | None:
        """1-based rank of the first right section, None when none was retrieved."""
        for rank, section in enumerate(self.sections, start=1):
            if section in self.case.answer:
                return rank
        return None


@dataclass(frozen=True)
class Figures:
    floor: float
    answerable: int
    unanswerable: int
    hits: dict[int, int]  # k -> answerable questions with a right section in the first k
    correct_refusals: int
    false_refusals: int  # answerable questions refused

    def hit_at(self, k: int) -> float:
        return self.hits[k] / self.answerable if self.answerable else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.correct_refusals / self.unanswerable if self.unanswerable else 0.0


def section_key(document_id: str, section: str) -> str:
    return f"{document_id} > {section}"


def load_cases(path: Path = EVAL_SET, documents: Sequence[DocumentIn] | None = None) -> list[Case]:
    """The evaluation set; every section it names must exist in `documents` (default: the
    shipped runbooks), so a renamed heading fails here instead of silently counting as a miss."""
    import yaml  # the dev extra's: the agent's image never evaluates

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != {"answerable", "unanswerable"}:
        raise EvalSetError(f"{path}: expected the keys 'answerable' and 'unanswerable'")
    known = {section for doc in documents or shipped_documents() for section in _sections(doc)}
    cases = []
    for i, item in enumerate(data["answerable"] or []):
        if not isinstance(item, dict) or set(item) != {"question", "answer"}:
            raise EvalSetError(f"{path}: answerable[{i}] needs exactly 'question' and 'answer'")
        answer = item["answer"]
        if not isinstance(answer, list) or not answer:
            raise EvalSetError(f"{path}: answerable[{i}].answer must be a non-empty list")
        unknown = [a for a in answer if a not in known]
        if unknown:
            raise EvalSetError(f"{path}: answerable[{i}] names unknown sections {unknown}")
        cases.append(Case(_question(path, f"answerable[{i}]", item["question"]), tuple(answer)))
    for i, question in enumerate(data["unanswerable"] or []):
        cases.append(Case(_question(path, f"unanswerable[{i}]", question), ()))
    questions = [c.question for c in cases]
    if len(set(questions)) != len(questions):
        raise EvalSetError(f"{path}: a question appears twice")
    return cases


def _question(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EvalSetError(f"{path}: {where} needs a question")
    return value.strip()


def _sections(doc: DocumentIn) -> set[str]:
    chunks = chunk_document(doc.document_id, doc.title, doc.text)
    return {section_key(doc.document_id, c.section) for c in chunks}


async def rank(cases: Sequence[Case], search: Search, depth: int = DEPTH) -> list[Ranked]:
    ranked = []
    for case in cases:
        best: dict[str, float] = {}
        for passage in await search(case.question, depth):
            key = section_key(passage.document_id, passage.section)
            best[key] = max(best.get(key, -1.0), passage.score)
        order = sorted(best.items(), key=lambda item: -item[1])
        ranked.append(
            Ranked(case, tuple(key for key, _ in order), tuple(score for _, score in order))
        )
    return ranked


def score(ranked: Sequence[Ranked], floor: float, ks: Sequence[int] = KS) -> Figures:
    hits = dict.fromkeys(ks, 0)
    correct_refusals = false_refusals = 0
    for r in ranked:
        refused = r.best < floor
        if not r.case.answerable:
            correct_refusals += refused
            continue
        if refused:
            false_refusals += 1
            continue
        at = r.rank_of_answer()
        for k in ks:
            hits[k] += at is not None and at <= k
    answerable = sum(r.case.answerable for r in ranked)
    return Figures(
        floor, answerable, len(ranked) - answerable, hits, correct_refusals, false_refusals
    )


def calibrate(ranked: Sequence[Ranked], keep: float = KEEP) -> float:
    """The highest floor that still keeps `keep` of the answerable questions (their best score
    at or above it), midway between the best scores of the last question it refuses and the
    first it keeps. Refusing a question the runbooks answer costs an on-call engineer the
    runbook, so that share is fixed; the unanswerable questions it refuses show how well the
    scores separate the two."""
    tops = sorted(r.best for r in ranked if r.case.answerable)
    if not tops:
        raise ValueError("no answerable question to calibrate on")
    refused = math.floor((1 - keep) * len(tops) + 1e-9)  # how many may fall below the floor
    if refused == 0:
        return math.floor(tops[0] * 1000) / 1000
    return round((tops[refused - 1] + tops[refused]) / 2, 3)


# --- search functions ----------------------------------------------------------------------


def corpus_chunks(documents: Sequence[DocumentIn] | None = None) -> list[Chunk]:
    return [
        chunk
        for doc in documents or shipped_documents()
        for chunk in chunk_document(doc.document_id, doc.title, doc.text)
    ]


async def index_search(embedder: Embedder, documents: Sequence[DocumentIn] | None = None) -> Search:
    """An exact cosine search in memory over the chunks the store would hold (vectors are unit
    length, so cosine is the dot product). Chroma's HNSW index returns the same order at this
    size (tests/devstack/perf/test_answers.py checks it against the store)."""
    import numpy as np

    chunks = corpus_chunks(documents)
    matrix = np.asarray(await embedder.embed([c.embedding_text() for c in chunks], "document"))

    async def search(query: str, top_k: int) -> list[Passage]:
        [q] = await embedder.embed([query], "query")
        scores = matrix @ np.asarray(q)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [_passage(chunks[i], float(scores[i])) for i in order]

    return search


@contextlib.asynccontextmanager
async def store_search(
    embedder: Embedder, documents: Sequence[DocumentIn] | None = None
) -> AsyncIterator[Search]:
    """The agent's own KnowledgeStore on an embedded Chroma in a temporary folder, loaded with
    the runbooks as the seed loads them; scores as the agent sees them, before any floor."""
    from agent.config import Settings
    from agent.metrics import Metrics
    from agent.store.vector import KnowledgeStore

    with tempfile.TemporaryDirectory(prefix="vaia-answers-") as folder:
        settings = Settings(_env_file=None, chroma_path=Path(folder), llm_provider="offline")
        store = KnowledgeStore(settings, embedder, Metrics())
        try:
            for doc in documents or shipped_documents():
                chunks = chunk_document(doc.document_id, doc.title, doc.text)
                await store.upsert_document(doc.document_id, chunks, {"source": doc.source or ""})

            async def search(query: str, top_k: int) -> list[Passage]:
                return await store.search(query, top_k, min_score=-1.0)

            yield search
        finally:
            store.close()


def _passage(chunk: Chunk, score: float) -> Passage:
    return Passage(chunk.id, chunk.document_id, chunk.title, "", chunk.section, chunk.text, score)


# --- runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One embedder's evaluation: its rankings, scored at a floor."""

    name: str
    space: str
    floor: float
    # "shipped" (agent/embeddings/floors.py), "calibrated" (on these rankings), or a setting
    floor_source: str
    figures: Figures
    ranked: tuple[Ranked, ...]
    calibrated: float  # the floor `calibrate` suggests for these rankings


def evaluated(
    name: str, space: str, ranked: Sequence[Ranked], floor: float, floor_source: str
) -> Run:
    return Run(
        name, space, floor, floor_source, score(ranked, floor), tuple(ranked), calibrate(ranked)
    )

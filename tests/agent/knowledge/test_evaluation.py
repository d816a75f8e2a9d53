"""The answer evaluation: its data, its arithmetic, and the floors the offline default meets."""

import anyio
import pytest

from agent.embeddings.floors import CALIBRATED_FLOORS
from agent.embeddings.hashing import HashingEmbedder
from agent.embeddings.hybrid import HybridEmbedder
from agent.embeddings.minilm import MiniLMEmbedder
from agent.knowledge import evaluation
from agent.knowledge.corpus import shipped_documents
from agent.knowledge.evaluation import Case, EvalSetError, Ranked

# What the offline default must reach at its shipped floor, and the hashing retrieval the
# agent had before does not reach (at today's cut, RETRIEVAL_MIN_SCORE, or at its own floor).
MIN_HIT_AT_1 = 0.75
MIN_HIT_AT_3 = 0.85
MIN_CORRECT_REFUSALS = 8  # of 12
MAX_ANSWERABLE_REFUSED = 3  # of 48


def passes(figures: evaluation.Figures) -> bool:
    return (
        figures.hit_at(1) >= MIN_HIT_AT_1
        and figures.hit_at(3) >= MIN_HIT_AT_3
        and figures.correct_refusals >= MIN_CORRECT_REFUSALS
        and figures.false_refusals <= MAX_ANSWERABLE_REFUSED
    )


def ranked_with(search) -> list[Ranked]:
    return anyio.run(evaluation.rank, evaluation.load_cases(), search)


@pytest.mark.unit
def test_the_set_has_enough_questions_of_each_kind() -> None:
    cases = evaluation.load_cases()
    assert sum(c.answerable for c in cases) >= 30
    assert sum(not c.answerable for c in cases) >= 8


@pytest.mark.unit
def test_every_on_call_section_is_asked_about() -> None:
    asked = {section for c in evaluation.load_cases() for section in c.answer}
    for doc in ("runbook/pod-troubleshooting", "runbook/cluster-troubleshooting"):
        document = next(d for d in shipped_documents() if d.id == doc)
        for section in evaluation._sections(document):
            assert section in asked, section


@pytest.mark.unit
def test_a_section_the_runbooks_do_not_have_is_an_error(tmp_path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text(
        "answerable:\n  - question: q\n    answer: [runbook/rollbacks > Rollbacks at dawn]\n"
        "unanswerable: []\n"
    )
    with pytest.raises(EvalSetError, match="unknown sections"):
        evaluation.load_cases(path)


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "answerable: []\n",
        "answerable:\n  - question: q\n    answer: []\nunanswerable: []\n",
        "answerable: []\nunanswerable: ['', 'x']\n",
        "answerable: []\nunanswerable: [same, same]\n",
    ],
)
def test_a_malformed_set_is_an_error(tmp_path, text) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text(text)
    with pytest.raises(EvalSetError):
        evaluation.load_cases(path)


def _ranked(question: str, answer: tuple[str, ...], *scored: tuple[str, float]) -> Ranked:
    return Ranked(Case(question, answer), tuple(s for s, _ in scored), tuple(v for _, v in scored))


RANKED = [
    _ranked("a", ("A",), ("A", 0.9), ("B", 0.5)),
    _ranked("b", ("B",), ("A", 0.6), ("B", 0.5)),
    _ranked("c", ("C",), ("A", 0.3), ("B", 0.2)),
    _ranked("x", (), ("A", 0.4)),
    _ranked("y", (), ("B", 0.1)),
]


@pytest.mark.unit
def test_hits_count_right_sections_within_k_and_refusals_count_as_misses() -> None:
    figures = evaluation.score(RANKED, floor=0.35, ks=(1, 2))
    assert figures.hits == {1: 1, 2: 2}  # c is refused, so never a hit
    assert (figures.correct_refusals, figures.false_refusals) == (1, 1)
    assert figures.hit_at(1) == pytest.approx(1 / 3)
    assert figures.refusal_rate == 0.5


@pytest.mark.unit
def test_the_calibrated_floor_keeps_the_share_of_answerable_questions_asked_for() -> None:
    assert evaluation.calibrate(RANKED, keep=1.0) == 0.3  # every answerable question kept
    assert evaluation.calibrate(RANKED, keep=0.6) == 0.45  # one refused: between 0.3 and 0.6
    with pytest.raises(ValueError, match="no answerable"):
        evaluation.calibrate(RANKED[3:])


@pytest.mark.unit
@pytest.mark.slow  # embeds every runbook with the model: about 5 s on 2 busy cores
def test_the_offline_default_meets_the_floors_at_its_shipped_floor() -> None:
    embedder = HybridEmbedder(MiniLMEmbedder(), HashingEmbedder(768))
    ranked = ranked_with(anyio.run(evaluation.index_search, embedder))
    floor = CALIBRATED_FLOORS[embedder.space]
    figures = evaluation.score(ranked, floor)
    assert passes(figures), figures
    # The shipped floor is the evaluation's: recalibrate it when the runbooks or the set change.
    assert evaluation.calibrate(ranked) == pytest.approx(floor, abs=0.01)


@pytest.mark.unit
def test_the_hashing_retrieval_of_before_does_not_meet_them() -> None:
    embedder = HashingEmbedder(768)
    ranked = ranked_with(anyio.run(evaluation.index_search, embedder))
    for floor in (0.05, CALIBRATED_FLOORS[embedder.space]):  # RETRIEVAL_MIN_SCORE, its own
        assert not passes(evaluation.score(ranked, floor))


@pytest.mark.integration
def test_the_store_scores_as_the_in_memory_index_does() -> None:
    """What the unit tier measures in memory is what the agent's store retrieves, within one
    question: chromadb 1.5.9's HNSW index now and then leaves a few vectors unreachable in a
    fresh store (seen once in about 25 stores of these 91 chunks: 87 returned for n_results=90),
    and Chroma keeps float32 vectors, so near-ties may swap."""
    embedder = HashingEmbedder(768)

    async def both() -> tuple[list[Ranked], list[Ranked]]:
        cases = evaluation.load_cases()
        memory = await evaluation.rank(cases, await evaluation.index_search(embedder))
        async with evaluation.store_search(embedder) as search:
            return memory, await evaluation.rank(cases, search)

    memory, store = anyio.run(both)
    differ = [
        m.case.question for m, s in zip(memory, store, strict=True) if abs(m.best - s.best) > 1e-4
    ]
    assert len(differ) <= 1, differ
    floor = CALIBRATED_FLOORS[embedder.space]
    mine, theirs = evaluation.score(memory, floor), evaluation.score(store, floor)
    assert all(abs(mine.hits[k] - theirs.hits[k]) <= 1 for k in mine.hits)
    assert abs(mine.correct_refusals - theirs.correct_refusals) <= 1

"""`invoke bench --answers`: do the answers fit the questions? The evaluation itself is the
agent's (agent/knowledge/evaluation.py: the set, the rankings, their scores and the calibrated
floor); this runs it for today's retrieval and the offline default, through the agent's own
store, and reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.knowledge.evaluation import (
    Case,
    Run,
    calibrate,
    evaluated,
    load_cases,
    rank,
    store_search,
)
from devstack.perf.reports import markdown


def answers_table(runs: Sequence[Run]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns = (
        "retrieval",
        "floor",
        "hit@1",
        "hit@3",
        "correct refusals",
        "answerable refused",
        "calibrated here",
    )
    rows: list[tuple[str, ...]] = []
    for run in runs:
        f = run.figures
        rows.append(
            (
                run.name,
                f"{run.floor:g} ({run.floor_source})",
                f"{f.hit_at(1):.2f} ({f.hits[1]}/{f.answerable})",
                f"{f.hit_at(3):.2f} ({f.hits[3]}/{f.answerable})",
                f"{f.correct_refusals}/{f.unanswerable}",
                f"{f.false_refusals}/{f.answerable}",
                f"{run.calibrated:g}",
            )
        )
    return columns, rows


def answers_block(runs: Sequence[Run], when: str, machine: str) -> list[str]:
    columns, rows = answers_table(runs)
    answerable = runs[0].figures.answerable if runs else 0
    unanswerable = runs[0].figures.unanswerable if runs else 0
    return [
        f"Measured with `invoke bench --answers` on {when}, {machine}.",
        f"The evaluation set `agent/knowledge/evaluation.yaml`: {answerable} questions in the "
        f"askers' words, each with the runbook sections that answer it, and {unanswerable} that "
        "the runbooks cannot answer; every shipped runbook in the agent's own store (embedded "
        "Chroma). hit@k: answerable questions with a right section among the first k distinct "
        "sections retrieved, not refused; a refusal: the best passage below the floor.",
        "",
        *markdown(columns, rows),
        "",
    ]


def plot_answers(runs: Sequence[Run], path: Path) -> Path:
    """hit@k by k, and each question's best score (answerable against unanswerable) with the
    floor: the second panel shows how well a floor can separate them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (hits, tops) = plt.subplots(1, 2, figsize=(11, 4.5))
    for run in runs:
        ks = sorted(run.figures.hits)
        hits.plot(ks, [run.figures.hit_at(k) for k in ks], "o-", label=run.name)
    hits.set_xticks(sorted(runs[0].figures.hits) if runs else [])
    hits.set_xlabel("k (distinct sections)")
    hits.set_ylabel("hit@k")
    hits.set_ylim(0, 1)
    hits.legend(loc="lower right", fontsize=8)
    for row, run in enumerate(runs):
        for answerable, colour in ((True, "tab:green"), (False, "tab:red")):
            best = [r.best for r in run.ranked if r.case.answerable == answerable]
            tops.scatter(best, [row + (0.1 if answerable else -0.1)] * len(best), c=colour, s=14)
        tops.plot([run.floor, run.floor], [row - 0.3, row + 0.3], "k-")
    tops.set_yticks(range(len(runs)), [run.name for run in runs], fontsize=8)
    tops.set_xlabel("best passage's score: green answerable, red not; bar: the floor")
    figure.suptitle("answer evaluation")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


async def answers_bench(cases: Sequence[Case] | None = None) -> list[Run]:
    """Today's retrieval and the offline default's, each through the agent's own store: the
    hashing embedder at RETRIEVAL_MIN_SCORE (the only cut before the relevance floor) and at
    its calibrated floor; all-MiniLM-L6-v2 alone and with the words' share (the default), at
    their floors. Rows of the model are left out when its package is not installed."""
    from agent.config import Settings
    from agent.embeddings import minilm
    from agent.embeddings.floors import CALIBRATED_FLOORS
    from agent.embeddings.hashing import HashingEmbedder
    from agent.embeddings.hybrid import HybridEmbedder

    cases = list(cases or load_cases())
    min_score = Settings(_env_file=None).retrieval_min_score
    hashing = HashingEmbedder(768)
    async with store_search(hashing) as search:
        ranked = await rank(cases, search)
    runs = [
        evaluated("hashing (before)", hashing.space, ranked, min_score, "RETRIEVAL_MIN_SCORE"),
        evaluated("hashing", hashing.space, ranked, CALIBRATED_FLOORS[hashing.space], "shipped"),
    ]
    if minilm.missing():
        return runs
    model = minilm.MiniLMEmbedder()
    async with store_search(model) as search:
        ranked = await rank(cases, search)
    runs.append(
        evaluated("all-MiniLM-L6-v2 alone", model.space, ranked, calibrate(ranked), "calibrated")
    )
    hybrid = HybridEmbedder(model, hashing)
    async with store_search(hybrid) as search:
        ranked = await rank(cases, search)
    floor = CALIBRATED_FLOORS[hybrid.space]
    runs.append(
        evaluated("all-MiniLM-L6-v2 + words (after)", hybrid.space, ranked, floor, "shipped")
    )
    return runs

"""`invoke bench --first-answer`: how long a newcomer waits, from `invoke dev` on a fresh
checkout (no `.vaia/`: the runbooks are seeded at first start) to the first cited answer to the
README's question.

Each round copies a checkout into an empty folder (this one's files as they are, but those git
ignores, and a baseline's with `git archive`), runs `invoke dev` there as the README says, with the
interpreter's packages and none of the developer's settings, and asks the question every
100 ms from the moment it is started: until the agent answers at all, and until an answer cites
the runbooks (`sources` with a cited passage; not `knowledge_base_loading`). Rounds alternate
between the checkouts, so both meet the same machine.
"""

from __future__ import annotations

import dataclasses
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.core.checkout import copy_checkout
from devstack.core.errors import DevstackError
from devstack.core.names import REPO
from devstack.core.runner import Runner
from devstack.harness import services

QUESTION = "How do I roll back a Deployment?"
POLL_S = 0.1
TIMEOUT_S = 120.0
# Settings a developer may have that would change what a fresh checkout does.
DEVELOPER_SETTINGS = ("CHROMA_PATH", "LLM_PROVIDER", "OFFLINE_EMBEDDER")


@dataclass(frozen=True)
class Round:
    answering_s: float  # until the agent answered the question at all
    cited_s: float  # until an answer cited the runbooks
    loading_answers: int  # answers flagged knowledge_base_loading meanwhile


@dataclass
class Checkout:
    label: str
    rounds: list[Round] = field(default_factory=list)

    def median(self, measure: Callable[[Round], float]) -> float:
        return statistics.median(measure(r) for r in self.rounds)


def cited(body: dict[str, Any]) -> bool:
    return (
        "knowledge_base_loading" not in body.get("degraded", [])
        and body.get("covered") is True
        and any(source.get("cited") for source in body.get("sources", []))
    )


def export(ref: str | None, folder: Path) -> Path:
    """A fresh copy of the checkout: `ref` from git (`git archive`), or None for the files of
    this working tree as they are (tracked, and new ones git does not ignore)."""
    git = Runner()
    if ref is not None:
        archive = folder.with_suffix(".tar")
        git.run("git", "-C", str(REPO), "archive", "--output", str(archive), ref, timeout=120)
        with tarfile.open(archive) as files:
            files.extractall(folder, filter="data")
        archive.unlink()
        return folder
    return copy_checkout(REPO, folder, git)


def one_round(checkout: Path) -> Round:
    """`invoke dev` in `checkout`, asked the question until it cites the runbooks."""
    env = services.agent_environment(PYTHONPATH=str(checkout))
    env = {k: v for k, v in env.items() if k not in DEVELOPER_SETTINGS}
    # Started, not waited for: the clock runs from the start, the question is the probe.
    dev = dataclasses.replace(services.invoke_dev(checkout, env), ready=lambda _: True)
    answering = None
    loading = 0
    started = time.perf_counter()
    with dev, httpx.Client(timeout=30) as client:
        while (elapsed := time.perf_counter() - started) < TIMEOUT_S:
            try:
                body = client.post(dev.url + "/v1/agent/infer", json={"query": QUESTION}).json()
            except httpx.TransportError:
                if not dev.running():
                    raise DevstackError("invoke dev exited", dev.output()) from None
                time.sleep(POLL_S)
                continue
            answering = answering if answering is not None else elapsed
            if cited(body):
                return Round(answering, elapsed, loading)
            loading += "knowledge_base_loading" in body.get("degraded", [])
            time.sleep(POLL_S)
    raise DevstackError(f"no cited answer within {TIMEOUT_S:.0f} s of `invoke dev`")


def first_answer_bench(baseline: str | None, rounds: int = 3) -> list[Checkout]:
    """`rounds` rounds of this checkout (and of `baseline`, a git ref, before it in each)."""
    checkouts = [Checkout(f"{baseline} (git archive)")] if baseline else []
    checkouts.append(Checkout("this checkout"))
    refs: list[str | None] = [baseline] if baseline else []
    refs.append(None)
    for _ in range(rounds):
        for checkout, ref in zip(checkouts, refs, strict=True):
            with tempfile.TemporaryDirectory(prefix="vaia-fresh-") as folder:
                checkout.rounds.append(one_round(export(ref, Path(folder))))
    return checkouts


def first_answer_table(
    checkouts: list[Checkout],
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns: tuple[str, ...] = (
        "checkout",
        "first answer of any kind, median",
        "first cited answer, median",
        "rounds",
        "vs the first",
        "goal",
    )
    first = checkouts[0].median(lambda r: r.cited_s)
    rows: list[tuple[str, ...]] = [
        (
            c.label,
            f"{c.median(lambda r: r.answering_s):.2f} s",
            f"{c.median(lambda r: r.cited_s):.2f} s",
            ", ".join(f"{r.cited_s:.2f}" for r in c.rounds),
            f"{c.median(lambda r: r.cited_s) / first:.2f}x",
            "<= 3 s",
        )
        for c in checkouts
    ]
    return columns, rows


def first_answer_block(checkouts: list[Checkout], machine: str) -> list[str]:
    from devstack.perf.reports import markdown

    rounds = len(checkouts[0].rounds) if checkouts else 0
    return [
        f"Measured with `invoke bench --first-answer` on {time.strftime('%Y-%m-%d')}, {machine}.",
        "`invoke dev` on a fresh copy of each checkout (no `.vaia/`), the README's question "
        f"asked every {POLL_S * 1000:.0f} ms from its start; {rounds} rounds each, alternating. "
        "A cited answer: the runbooks cover the question, a source is cited, the knowledge base "
        "is not loading.",
        "",
        *markdown(*first_answer_table(checkouts)),
        "",
    ]

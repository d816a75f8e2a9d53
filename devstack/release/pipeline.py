"""`invoke cd`: the stages in order, each a hard gate, with a summary of what ran."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "FAILED", "not run", "planned"]


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    action: Callable[[], str | None]  # returns a detail line for the summary


@dataclass(frozen=True)
class StageResult:
    name: str
    outcome: Outcome
    seconds: float
    detail: str


def run_stages(
    stages: list[Stage], dry_run: bool, log: Callable[[str], None] = print
) -> list[StageResult]:
    """Run in order; the first failure stops the chain. A dry run runs nothing at all."""
    results: list[StageResult] = []
    failed = False
    for stage in stages:
        if dry_run:
            results.append(StageResult(stage.name, "planned", 0.0, stage.description))
            continue
        if failed:
            results.append(StageResult(stage.name, "not run", 0.0, "an earlier gate failed"))
            continue
        log(f"== {stage.name}: {stage.description}")
        started = time.perf_counter()
        try:
            detail = stage.action() or ""
        except Exception as exc:  # every failure is a closed gate, whatever raised it
            failed = True
            results.append(
                StageResult(stage.name, "FAILED", time.perf_counter() - started, str(exc)[:300])
            )
            continue
        results.append(StageResult(stage.name, "passed", time.perf_counter() - started, detail))
    return results


def succeeded(results: list[StageResult]) -> bool:
    return all(r.outcome in ("passed", "planned") for r in results)

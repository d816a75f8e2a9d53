"""Stages in order, each a hard gate, with a summary of what ran. A stage receives what the
stages before it produced (`outputs`, by stage name) and returns what it produced."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "FAILED", "not run", "planned"]


@dataclass(frozen=True)
class Produced:
    detail: str  # one line for the summary
    value: str = ""  # what the next stages need (an image, a reference)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    action: Callable[[Mapping[str, str]], Produced]


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
    outputs: dict[str, str] = {}
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
            produced = stage.action(outputs)
        except Exception as exc:  # every failure is a closed gate, whatever raised it
            failed = True
            detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            results.append(StageResult(stage.name, "FAILED", time.perf_counter() - started, detail))
            continue
        outputs[stage.name] = produced.value
        elapsed = time.perf_counter() - started
        results.append(StageResult(stage.name, "passed", elapsed, produced.detail))
    return results


def succeeded(results: list[StageResult]) -> bool:
    return all(r.outcome in ("passed", "planned") for r in results)

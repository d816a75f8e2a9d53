"""A small registry of typed tools. Arguments are pydantic models, so every tool exports a JSON
schema (offered to Gemini as a function declaration) and every call is validated before it runs.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.domain import Passage

log = logging.getLogger(__name__)

Search = Callable[[str, int], Awaitable[list[Passage]]]


@dataclass
class ToolContext:
    """What a tool may use, and what it found (passages become citable sources)."""

    search: Search
    found: list[Passage] = field(default_factory=list)

    def cite_number(self, passage: Passage) -> int:
        """The 1-based number of a passage in `found`, adding it if it is new."""
        for n, known in enumerate(self.found, start=1):
            if known.chunk_id == passage.chunk_id:
                return n
        self.found.append(passage)
        return len(self.found)


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


A = TypeVar("A", bound=ToolArgs)


@dataclass(frozen=True)
class Tool(Generic[A]):
    name: str
    description: str
    args_model: type[A]
    handler: Callable[[A, ToolContext], Awaitable[dict[str, Any]]]

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON schema: generated once per model (pydantic takes ~0.2 ms a
        schema), a copy each call so that no caller can change the cached one."""
        return copy.deepcopy(_schema_of(self.args_model))

    async def run(self, raw_args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        args = self.args_model.model_validate(raw_args)
        return await self.handler(args, ctx)


@functools.cache
def _schema_of(model: type[ToolArgs]) -> dict[str, Any]:
    return model.model_json_schema()


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    result: dict[str, Any]


class ToolRegistry:
    def __init__(self, tools: list[Tool[Any]] | None = None) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    def __iter__(self) -> Any:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    async def call(self, name: str, raw_args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        """Run a tool; bad arguments or a failing tool become an error result the model can read,
        never an exception that fails the request."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolOutcome(False, {"error": f"unknown tool {name!r}"})
        try:
            return ToolOutcome(True, await tool.run(raw_args, ctx))
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
            return ToolOutcome(False, {"error": "invalid arguments", "details": errors})
        except Exception as exc:  # a tool's own failure must not fail the answer
            log.warning("tool failed", extra={"tool": name, "error": repr(exc)})
            return ToolOutcome(False, {"error": f"{type(exc).__name__}: {exc}"})


# --- the tools -------------------------------------------------------------------------------


class SearchKnowledgeArgs(ToolArgs):
    query: str = Field(
        min_length=1, max_length=500, description="What to look for, in a few keywords."
    )
    top_k: int = Field(4, ge=1, le=10, description="How many passages to return.")


async def _search_knowledge(args: SearchKnowledgeArgs, ctx: ToolContext) -> dict[str, Any]:
    passages = await ctx.search(args.query, args.top_k)
    results = []
    for passage in passages:
        # Number passages by their place in ctx.found, so that [n] citations stay unambiguous.
        n = ctx.cite_number(passage)
        results.append(
            {"n": n, "title": passage.title, "score": round(passage.score, 3), "text": passage.text}
        )
    return {"passages": results}


class ErrorBudgetArgs(ToolArgs):
    slo_percent: float = Field(
        gt=0, lt=100, description="Availability objective in percent, for example 99.9."
    )
    window_days: int = Field(30, ge=1, le=366, description="Length of the SLO window in days.")
    observed_availability_percent: float | None = Field(
        None, ge=0, le=100, description="Availability measured so far in the window, if known."
    )


async def _error_budget(args: ErrorBudgetArgs, ctx: ToolContext) -> dict[str, Any]:
    window_minutes = args.window_days * 24 * 60
    budget_fraction = (100 - args.slo_percent) / 100
    result: dict[str, Any] = {
        "slo_percent": args.slo_percent,
        "window_days": args.window_days,
        "allowed_downtime_minutes": round(window_minutes * budget_fraction, 2),
    }
    if args.observed_availability_percent is not None:
        used_fraction = (100 - args.observed_availability_percent) / 100
        result["budget_consumed_percent"] = round(100 * used_fraction / budget_fraction, 1)
        result["remaining_minutes"] = round(window_minutes * (budget_fraction - used_fraction), 2)
    return result


def default_tools() -> ToolRegistry:
    return ToolRegistry(
        [
            Tool(
                name="search_knowledge",
                description=(
                    "Search the SRE runbook knowledge base (deploys, rollbacks, autoscaling, "
                    "incident response, operating this service). Returns passages to cite."
                ),
                args_model=SearchKnowledgeArgs,
                handler=_search_knowledge,
            ),
            Tool(
                name="error_budget",
                description=(
                    "Compute the error budget of an availability SLO: allowed downtime in the "
                    "window and, given the observed availability, how much is consumed."
                ),
                args_model=ErrorBudgetArgs,
                handler=_error_budget,
            ),
        ]
    )

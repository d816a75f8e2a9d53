import re

import pytest
from jsonschema import Draft202012Validator

from agent.domain import Passage
from agent.llm.gemini import tool_declarations
from agent.tools import ToolContext, default_tools

pytestmark = pytest.mark.unit

TOOLS = list(default_tools())
GEMINI_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")

# One valid call per tool: every tool must appear here (checked below).
EXAMPLES = {
    "search_knowledge": {"query": "rollback", "top_k": 2},
    "error_budget": {
        "slo_percent": 99.9,
        "window_days": 30,
        "observed_availability_percent": 99.95,
    },
}


async def _search(query: str, top_k: int) -> list[Passage]:
    return [
        Passage(f"doc::{i}", "doc", "Doc", "src", "", f"{query} {i}", 0.9) for i in range(top_k)
    ]


def test_every_tool_has_an_example() -> None:
    assert {t.name for t in TOOLS} == set(EXAMPLES)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_schema_is_valid_and_described(tool) -> None:
    schema = tool.json_schema()
    Draft202012Validator.check_schema(schema)
    assert GEMINI_NAME.match(tool.name)
    assert len(tool.description) > 20
    assert schema["type"] == "object"
    assert schema.get("additionalProperties") is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{tool.name}.{name} has no description"
    Draft202012Validator(schema).validate(EXAMPLES[tool.name])


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_schema_rejects_what_the_model_rejects(tool) -> None:
    validator = Draft202012Validator(tool.json_schema())
    assert not validator.is_valid({**EXAMPLES[tool.name], "unexpected": 1})
    assert not validator.is_valid({})


def test_gemini_declarations_carry_the_schemas() -> None:
    [declared] = tool_declarations(default_tools())
    assert [d["name"] for d in declared["functionDeclarations"]] == [t.name for t in TOOLS]
    for declaration, tool in zip(declared["functionDeclarations"], TOOLS, strict=True):
        assert declaration["parameters_json_schema"] == tool.json_schema()


def test_declarations_and_schemas_are_built_once() -> None:
    """The same on every request: computed once, and no caller can change the cached copy."""
    tools = default_tools()
    assert tool_declarations(tools) is tool_declarations(tools)
    tool = next(iter(tools))
    schema = tool.json_schema()
    schema["properties"].clear()
    assert tool.json_schema()["properties"]


@pytest.mark.anyio
async def test_error_budget_arithmetic() -> None:
    outcome = await default_tools().call(
        "error_budget",
        {"slo_percent": 99.9, "window_days": 30, "observed_availability_percent": 99.95},
        ToolContext(search=_search),
    )
    assert outcome.ok
    assert outcome.result["allowed_downtime_minutes"] == 43.2
    assert outcome.result["budget_consumed_percent"] == 50.0
    assert outcome.result["remaining_minutes"] == 21.6


@pytest.mark.anyio
async def test_search_numbers_passages_after_the_prompt_ones() -> None:
    first = Passage("doc::0", "doc", "Doc", "src", "", "already in prompt", 0.9)
    ctx = ToolContext(search=_search, found=[first])
    outcome = await default_tools().call("search_knowledge", {"query": "q", "top_k": 2}, ctx)
    assert [p["n"] for p in outcome.result["passages"]] == [1, 2]  # doc::0 is already [1]
    assert [p.chunk_id for p in ctx.found] == ["doc::0", "doc::1"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("error_budget", {"slo_percent": 100}, "invalid arguments"),
        ("error_budget", {"slo_percent": "x"}, "invalid arguments"),
        ("search_knowledge", {"query": ""}, "invalid arguments"),
        ("nope", {}, "unknown tool"),
    ],
)
async def test_bad_calls_become_error_results(name, args, error) -> None:
    outcome = await default_tools().call(name, args, ToolContext(search=_search))
    assert not outcome.ok
    assert error in outcome.result["error"]


@pytest.mark.anyio
async def test_a_failing_tool_does_not_raise() -> None:
    async def broken(query: str, top_k: int) -> list[Passage]:
        raise RuntimeError("store down")

    outcome = await default_tools().call(
        "search_knowledge", {"query": "q"}, ToolContext(search=broken)
    )
    assert not outcome.ok and "store down" in outcome.result["error"]

import pytest

from agent.domain import Passage
from agent.llm.offline import NO_SOURCES_ANSWER, OfflineProvider
from agent.prompts import build_prompt
from agent.tools import ToolContext, default_tools

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

ROLLBACK = Passage(
    "r::0",
    "rollbacks",
    "Rollbacks",
    "src",
    "",
    "## Undo\nTo roll back a Deployment, run `kubectl rollout undo deployment/app`. "
    "Rollbacks are fast because the old ReplicaSet is kept.\n- Check the rollout history first.",
    0.6,
)
HPA = Passage(
    "a::0",
    "autoscaling",
    "Autoscaling",
    "src",
    "",
    "The HPA needs CPU requests on every container. Without requests the target shows unknown.",
    0.3,
)


async def _nothing(query: str, top_k: int) -> list[Passage]:
    return []


async def answer(query: str, passages: list[Passage]):
    prompt = build_prompt(query, passages, [])
    return await OfflineProvider().complete(
        prompt, default_tools(), ToolContext(_nothing, list(passages))
    )


async def test_answers_with_the_matching_sentences_and_cites_them() -> None:
    completion = await answer("How do I roll back a deployment?", [ROLLBACK, HPA])
    assert "kubectl rollout undo deployment/app" in completion.text
    assert "[1]" in completion.text
    assert completion.cited == [1]
    assert "CPU requests" not in completion.text


async def test_is_deterministic() -> None:
    first = await answer("why does the hpa show unknown?", [ROLLBACK, HPA])
    second = await answer("why does the hpa show unknown?", [ROLLBACK, HPA])
    assert first == second
    assert first.cited == [2]


async def test_headings_and_fragments_are_never_quoted() -> None:
    completion = await answer("undo", [ROLLBACK])
    assert "## Undo" not in completion.text


async def test_no_passages_no_invention() -> None:
    completion = await answer("How do I roll back?", [])
    assert completion.text == NO_SOURCES_ANSWER
    assert completion.cited == []


async def test_unrelated_passages_give_no_answer() -> None:
    completion = await answer("What is the capital of France?", [ROLLBACK])
    assert completion.text == NO_SOURCES_ANSWER


async def test_error_budget_questions_call_the_tool() -> None:
    completion = await answer("What is the error budget of a 99.95% SLO over 28 days?", [])
    [call] = completion.tool_calls
    assert call.name == "error_budget" and call.ok
    assert call.arguments == {"slo_percent": 99.95, "window_days": 28}
    assert "20.16 minutes" in completion.text


async def test_at_most_three_sentences_in_document_order() -> None:
    completion = await answer("rollout undo history rollbacks replicaset", [ROLLBACK])
    lines = [line for line in completion.text.splitlines() if line.startswith("- ")]
    assert 1 <= len(lines) <= 3
    positions = [ROLLBACK.text.find(line[2:30]) for line in lines]
    assert -1 not in positions and positions == sorted(positions)

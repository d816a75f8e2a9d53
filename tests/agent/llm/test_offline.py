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
    first = await answer("why does the hpa show unknown?", [HPA, ROLLBACK])
    second = await answer("why does the hpa show unknown?", [HPA, ROLLBACK])
    assert first == second
    assert first.cited == [1]


async def test_headings_and_fragments_are_never_quoted() -> None:
    completion = await answer("undo", [ROLLBACK])
    assert "## Undo" not in completion.text


async def test_no_passages_no_invention() -> None:
    completion = await answer("How do I roll back?", [])
    assert completion.text == NO_SOURCES_ANSWER
    assert completion.cited == []


def _chunk(section: str, index: int, text: str, score: float, doc: str = "pods") -> Passage:
    return Passage(
        f"runbook/{doc}::1::{index:04d}", f"runbook/{doc}", "Pods", "", section, text, score
    )


CRASH_0 = _chunk(
    "CrashLoopBackOff",
    0,
    "A Pod in `CrashLoopBackOff` has a container that starts, exits and is restarted again. "
    "CrashLoopBackOff is a symptom, not a cause.\n\nTo find out why the container exits:\n\n"
    "- Run `kubectl logs <pod> --previous` to read the logs of the container that crashed.",
    0.6,
)
CRASH_1 = _chunk(
    "CrashLoopBackOff",
    1,
    "- Exit code 137 means the container was killed, most often because it was OOMKilled.\n"
    "- Exit code 0 means the main process finished; run one-off work as a Job instead.",
    0.5,
)
PENDING = _chunk(
    "Pending Pods",
    2,
    "A Pod stays `Pending` when the scheduler cannot place it. Readiness gates add conditions "
    "to the Pod's readiness, and a Pod waits for them.",
    0.55,
)


async def test_answers_from_the_best_section_only_its_opening_first() -> None:
    completion = await answer("Why is my pod in CrashLoopBackOff?", [CRASH_1, PENDING, CRASH_0])
    bullets = [line for line in completion.text.splitlines() if line.startswith("- ")]
    assert bullets[0].startswith("- A Pod in `CrashLoopBackOff` has a container")
    assert any("kubectl logs <pod> --previous" in b for b in bullets)
    assert "scheduler" not in completion.text and "Readiness gates" not in completion.text
    assert 2 not in completion.cited  # the Pending passage: retrieved, not quoted
    assert "(Pods — CrashLoopBackOff)" in completion.text.splitlines()[0]


async def test_list_items_are_quoted_whole_and_lead_ins_never() -> None:
    completion = await answer("what does exit code 137 mean", [CRASH_0, CRASH_1])
    assert "- Exit code 137 means the container was killed, most often because" in completion.text
    assert "To find out why the container exits:" not in completion.text


async def test_sentences_keep_the_runbooks_order_across_chunks() -> None:
    completion = await answer("pod crashloopbackoff exit code logs", [CRASH_1, CRASH_0])
    text = completion.text
    assert text.index("has a container") < text.index("kubectl logs") < text.index("Exit code")


async def test_error_budget_questions_call_the_tool() -> None:
    completion = await answer("What is the error budget of a 99.95% SLO over 28 days?", [])
    [call] = completion.tool_calls
    assert call.name == "error_budget" and call.ok
    assert call.arguments == {"slo_percent": 99.95, "window_days": 28}
    assert "20.16 minutes" in completion.text


async def test_at_most_the_opening_and_four_more_in_document_order() -> None:
    long = _chunk(
        "Steps",
        0,
        "\n".join(
            f"- Step {i}: run `kubectl rollout undo deployment/app{i}` now." for i in range(9)
        ),
        0.6,
    )
    completion = await answer("how do I undo the rollout?", [long])
    lines = [line for line in completion.text.splitlines() if line.startswith("- ")]
    assert len(lines) == 5
    positions = [long.text.find(line[2:20]) for line in lines]
    assert -1 not in positions and positions == sorted(positions)

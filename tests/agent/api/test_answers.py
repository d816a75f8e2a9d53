"""The answers of the offline default (all-MiniLM-L6-v2 with the words' share), end to end: they
fit the question, and a question the runbooks do not cover is refused with nothing cited."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.llm.offline import NOT_COVERED_ANSWER
from tests.agent.api.conftest import api_settings
from tests.conftest import running_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = api_settings(tmp_path_factory.mktemp("chroma"), offline_embedder="auto")
    with running_app(settings) as c:
        yield c


def ask(client: TestClient, query: str) -> dict:
    response = client.post("/v1/agent/infer", json={"query": query})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_offline_default_retrieves_with_the_model(client) -> None:
    checks = client.get("/ready").json()["checks"]
    assert checks["chromadb"]["collection"].startswith("vaia_kb__all-MiniLM-L6-v2-int8-")


def test_a_crash_loop_question_gets_the_crash_loop_section_and_its_commands(client) -> None:
    body = ask(client, "Why is my pod in CrashLoopBackOff?")
    assert body["covered"] is True
    first_line, *bullets = body["answer"].splitlines()
    assert first_line == "From the runbooks (Troubleshooting Pods — CrashLoopBackOff):"
    assert bullets[0].startswith("- A Pod in `CrashLoopBackOff` has a container that starts")
    assert any("kubectl logs <pod> -n <namespace> --previous" in b for b in bullets)
    assert any("kubectl describe pod <pod>" in b for b in bullets)
    assert "readiness gate" not in body["answer"].lower()
    cited = [s for s in body["sources"] if s["cited"]]
    assert cited and {s["section"] for s in cited} == {"CrashLoopBackOff"}
    assert body["sources"][0]["section"] == "CrashLoopBackOff"


def test_a_question_the_runbooks_do_not_cover_is_refused_citing_nothing(client) -> None:
    body = ask(client, "What is the capital of France?")
    assert body["answer"] == NOT_COVERED_ANSWER
    assert body["covered"] is False
    assert body["sources"] == [] and body["tool_calls"] == [] and body["degraded"] == []
    again = ask(client, "What is the capital of France?")
    assert again["cached"] is True and again["covered"] is False and again["sources"] == []
    metrics = client.get("/metrics").text
    assert "vaia_not_covered_answers_total 1.0" in metrics


def test_a_paraphrased_question_finds_its_section(client) -> None:
    body = ask(client, "my volume claim never gets bound to a disk")
    assert body["sources"][0]["section"] == "A PersistentVolumeClaim stuck in Pending"
    assert "kubectl describe pvc" in body["answer"]

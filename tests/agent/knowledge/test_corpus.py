import pytest

from agent.knowledge.chunking import chunk_document
from agent.knowledge.corpus import shipped_documents

pytestmark = pytest.mark.unit


def test_the_shipped_runbooks_cover_the_vertical() -> None:
    docs = {d.id: d for d in shipped_documents()}
    assert set(docs) == {
        "runbook/autoscaling",
        "runbook/deploys",
        "runbook/incident-response",
        "runbook/observability",
        "runbook/rollbacks",
        "runbook/vaia-operations",
    }
    for doc in docs.values():
        assert doc.title and not doc.title.startswith("#")
        assert len(doc.text.split()) > 500
        assert chunk_document(doc.document_id, doc.title, doc.text)


def test_operations_runbook_matches_the_contract() -> None:
    ops = next(d for d in shipped_documents() if d.id == "runbook/vaia-operations").text
    for fact in (
        "8080",
        "/health",
        "/ready",
        "/metrics",
        "/v1/agent/infer",
        "/v1/knowledge/documents",
        "GEMINI_API_KEY",
        "CHROMA_HOST",
        "REDIS_URL",
        "AGENT_API_KEYS",
        "invoke dev",
    ):
        assert fact in ops, fact

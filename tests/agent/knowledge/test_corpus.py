import pytest

from agent.knowledge.chunking import chunk_document
from agent.knowledge.corpus import shipped_documents

pytestmark = pytest.mark.unit


def test_the_shipped_runbooks_cover_the_vertical() -> None:
    docs = {d.id: d for d in shipped_documents()}
    assert set(docs) == {
        "runbook/autoscaling",
        "runbook/cluster-troubleshooting",
        "runbook/deploys",
        "runbook/incident-response",
        "runbook/observability",
        "runbook/pod-troubleshooting",
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


ON_CALL_SECTIONS = {
    "runbook/pod-troubleshooting": (
        "CrashLoopBackOff",
        "ImagePullBackOff and ErrImagePull",
        "OOMKilled",
        "Pending Pods and FailedScheduling",
        "Failing liveness and readiness probes",
        "A PersistentVolumeClaim stuck in Pending",
    ),
    "runbook/cluster-troubleshooting": (
        "Node NotReady",
        "Node pressure and evicted Pods",
        "DNS failures inside Pods",
        "Expired certificates",
    ),
}


def test_what_on_call_meets_most_has_a_section_with_the_commands_to_run() -> None:
    docs = {d.id: d for d in shipped_documents()}
    for document_id, sections in ON_CALL_SECTIONS.items():
        doc = docs[document_id]
        chunks = chunk_document(doc.document_id, doc.title, doc.text)
        for section in sections:
            text = "\n".join(c.text for c in chunks if c.section == section)
            assert text, section
            assert "`kubectl " in text or "`kubeadm " in text, section

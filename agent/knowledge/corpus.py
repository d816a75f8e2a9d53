"""The shipped knowledge base: platform/SRE runbooks as markdown files in `corpus/`."""

from __future__ import annotations

from importlib.resources import files

from agent.domain import DocumentIn


def shipped_documents() -> list[DocumentIn]:
    """One document per markdown file; its id is `runbook/<file stem>`, its title the H1."""
    documents = []
    for entry in sorted(
        files("agent.knowledge").joinpath("corpus").iterdir(), key=lambda e: e.name
    ):
        if not entry.name.endswith(".md"):
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.lstrip().splitlines()[0] if text.strip() else ""
        title = first.lstrip("# ").strip() if first.startswith("#") else entry.name
        stem = entry.name.removesuffix(".md")
        documents.append(
            DocumentIn(
                id=f"runbook/{stem}",
                title=title,
                text=text,
                source=f"agent/knowledge/corpus/{entry.name}",
                metadata={"kind": "runbook"},
            )
        )
    return documents

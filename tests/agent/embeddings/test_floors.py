import pytest

from agent.embeddings.floors import CALIBRATED_FLOORS, relevance_floor
from agent.embeddings.hashing import HashingEmbedder
from agent.embeddings.hybrid import HybridEmbedder
from agent.embeddings.minilm import MiniLMEmbedder

pytestmark = pytest.mark.unit


def test_the_offline_embedders_have_calibrated_floors() -> None:
    default = HybridEmbedder(MiniLMEmbedder(), HashingEmbedder(768))
    assert relevance_floor(default.space, None) == CALIBRATED_FLOORS[default.space]
    assert relevance_floor(HashingEmbedder(768).space, None) == CALIBRATED_FLOORS["hash-v1-768"]


def test_an_uncalibrated_space_has_no_floor_unless_one_is_set() -> None:
    assert relevance_floor("gemini-embedding-001-768", None) is None
    assert relevance_floor(HashingEmbedder(256).space, None) is None
    assert relevance_floor("gemini-embedding-001-768", 0.6) == 0.6


def test_a_set_floor_overrides_the_calibrated_one() -> None:
    assert relevance_floor("hash-v1-768", -1.0) == -1.0

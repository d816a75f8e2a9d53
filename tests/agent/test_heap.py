import gc

import pytest

from agent import heap

pytestmark = pytest.mark.unit


def test_the_start_up_heap_is_frozen_only_in_the_server_process(monkeypatch) -> None:
    assert gc.get_freeze_count() == 0
    heap.freeze_startup_objects()
    assert gc.get_freeze_count() == 0  # an app built by a test or a script: nothing frozen
    monkeypatch.setattr(heap, "_enabled", False)
    heap.enable_freezing()  # what `python -m agent serve` does
    try:
        heap.freeze_startup_objects()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

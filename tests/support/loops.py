"""Where test code runs, for tests that check work leaves the event loop."""

from __future__ import annotations

import asyncio


def on_event_loop() -> bool:
    """Whether the caller runs on an asyncio event loop (False in a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

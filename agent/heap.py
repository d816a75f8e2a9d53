"""The objects made while the agent starts (modules, chromadb and its numpy, the models, the
seeded store's caches) live as long as the process, and the garbage collector's full collections
scanned them all again and again: 130-185 ms each with the event loop stopped, the tail of every
latency under load, /health's included (docs/benchmarks.md, issue #19). Once the server has
started they are moved out of the collector's sight (`gc.freeze`); what requests create is
collected as before.

Only in the server process (`python -m agent serve` enables it): an app built in a test or a
script must not keep every object of its caller alive forever.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)
_enabled = False


def enable_freezing() -> None:
    global _enabled
    _enabled = True


def freeze_startup_objects() -> None:
    """Collect once, then exempt every object alive now from later collections."""
    if not _enabled:
        return
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "startup objects frozen",
        extra={
            "objects": gc.get_freeze_count(),
            "ms": round(1000 * (time.perf_counter() - started)),
        },
    )

"""The agent served for real, for the serving tests: thin fixtures over the serving harness
(devstack/harness/services.py), the Gemini stand-in in its own process and the agent in its own
(`python -m agent serve`), on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.harness.services import AgentServer, GeminiServer, agent, gemini_server

__all__ = ["agent_process", "gemini_process"]

# A folder holding another `agent` package (an older commit's, `git archive <sha> agent`): the
# serving tests then run against it, to show what they catch (each fails on the code before #19).
AGENT_FROM = os.environ.get("VAIA_TEST_AGENT_FROM")


@contextmanager
def gemini_process(**behaviour: Any) -> Iterator[GeminiServer]:
    with gemini_server(**behaviour) as standin:
        yield standin


@contextmanager
def agent_process(tmp_path: Path, gemini: GeminiServer | None, **env: str) -> Iterator[AgentServer]:
    """The agent on a free port (Gemini the stand-in, or offline without one), ready with the
    shipped runbooks seeded; stopped with SIGTERM."""
    agent_from = Path(AGENT_FROM) if AGENT_FROM else None
    with agent(tmp_path, gemini, agent_from, **env) as running:
        yield running

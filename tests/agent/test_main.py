"""The real process: `python -m agent serve` and `python -m agent seed`."""

import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from devstack.harness import services
from tests.support.processes import agent_environment

pytestmark = pytest.mark.integration


def _env(tmp_path, **extra: str) -> dict[str, str]:
    base = {"CHROMA_PATH": str(tmp_path / "chroma"), "HOST": "127.0.0.1", "LLM_PROVIDER": "offline"}
    return agent_environment(**{**base, **extra})


def test_sigterm_drains_in_flight_requests_then_exits_cleanly(tmp_path) -> None:
    agent = dataclasses.replace(
        services.agent(
            tmp_path, FAULT_LATENCY_MS="1500", SEED_ON_STARTUP="false", LOG_LEVEL="info"
        ),
        ready=services.answers("/health"),
        log=tmp_path / "agent.log",
    )
    with agent:
        result: dict[str, object] = {}

        def slow_request() -> None:
            response = httpx.post(
                agent.url + "/v1/agent/infer", json={"query": "rollback"}, timeout=30
            )
            result["status"] = response.status_code

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.5)  # the request is now in flight (it takes 1.5 s)
        agent.stop(signal.SIGTERM, timeout=30)
        thread.join(30)
        assert result["status"] == 200  # finished, not cut off
        # A drained shutdown is a clean exit (uvicorn alone re-raises the signal: 143).
        assert agent.process is not None and agent.process.returncode == 0
    lines = (tmp_path / "agent.log").read_text().splitlines()
    messages = [json.loads(line)["msg"] for line in lines if line.startswith("{")]
    assert "agent started" in messages and "agent stopped" in messages
    assert messages.index("agent stopped") > messages.index("agent started")
    assert "Waiting for connections to close. (CTRL+C to force quit)" in messages
    assert not [line for line in lines if '"level": "error"' in line]


def test_seed_command_loads_the_runbooks_idempotently(tmp_path) -> None:
    env = _env(tmp_path)
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "agent", "seed"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert {d["id"] for d in runs[0]["documents"]} >= {
        "runbook/rollbacks",
        "runbook/vaia-operations",
    }


def test_bad_configuration_fails_fast_with_a_clear_message(tmp_path) -> None:
    env = _env(tmp_path, LLM_PROVIDER="gemini")
    out = subprocess.run(
        [sys.executable, "-m", "agent", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "LLM_PROVIDER=gemini needs GEMINI_API_KEY" in out.stderr

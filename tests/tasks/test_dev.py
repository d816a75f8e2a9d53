"""tasks/dev.py: commands recorded with invoke's MockContext, and `invoke dev` run for real."""

import re
import shutil
import subprocess
import sys

import httpx
import pytest
from invoke import Exit, MockContext, Result

from agent.knowledge.corpus import shipped_documents
from devstack.core import tools as devtools
from tasks import dev as tasks
from tests.conftest import ROOT
from tests.support.processes import agent_environment, invoke_dev, wait_until


def recorded(c: MockContext) -> list[tuple[str, dict]]:
    return [(call.args[0], call.kwargs) for call in c.run.call_args_list]


@pytest.fixture
def c() -> MockContext:
    return MockContext(run=Result(), repeat=True)


@pytest.mark.unit
def test_dev_runs_the_service_with_reload_on_loopback(c) -> None:
    tasks.dev(c)
    [(command, kwargs)] = recorded(c)
    assert command.endswith("-m agent serve --reload")
    assert kwargs["env"] == {"HOST": "127.0.0.1", "PORT": "8080", "RATE_LIMIT_PER_MINUTE": "0"}


@pytest.mark.unit
def test_dev_flags(c) -> None:
    tasks.dev(c, host="0.0.0.0", port=9000, reload=False)
    [(command, kwargs)] = recorded(c)
    assert command.endswith("-m agent serve")
    assert kwargs["env"] == {"HOST": "0.0.0.0", "PORT": "9000", "RATE_LIMIT_PER_MINUTE": "0"}


@pytest.mark.unit
def test_dev_keeps_a_rate_limit_the_user_set(c, monkeypatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "60")
    tasks.dev(c)
    [(_, kwargs)] = recorded(c)
    assert kwargs["env"]["RATE_LIMIT_PER_MINUTE"] == "60"


@pytest.mark.unit
def test_test_passes_markers_and_the_remainder_to_pytest(c) -> None:
    c.remainder = "-x -q tests/agent"
    tasks.test(c, marker="unit and not slow", keyword="prompt")
    [(command, _)] = recorded(c)
    assert command.endswith("-m pytest -m 'unit and not slow' -k prompt -x -q tests/agent")


@pytest.mark.unit
def test_lint_runs_ruff_and_mypy(c) -> None:
    tasks.lint(c)
    commands = [command for command, _ in recorded(c)]
    assert [cmd.split(" -m ", 1)[1] for cmd in commands] == [
        "ruff check .",
        "ruff format --check .",
        "mypy",
    ]


@pytest.mark.unit
def test_seed_without_url_writes_to_the_configured_store(c) -> None:
    tasks.seed(c)
    [(command, _)] = recorded(c)
    assert command.endswith("-m agent seed")


@pytest.mark.unit
def test_doctor_lists_every_tool_and_strict_fails_on_missing(c, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exit) as info:
        tasks.doctor(c, strict=True)
    assert info.value.code == 1
    out = capsys.readouterr().out
    for name in devtools.TOOLS:
        assert name in out
    assert "redis-server: apt-get install -y redis-server" in out
    assert re.search(rf"\d+ of {len(devtools.TOOLS)} tools found", out)


@pytest.mark.unit
def test_test_refuses_a_tier_that_does_not_exist(c) -> None:
    with pytest.raises(Exit, match="unknown test tier 'integation'"):
        tasks.test(c, marker="unit or integation")
    assert recorded(c) == []


@pytest.mark.integration
def test_invoke_dev_serves_seeds_and_reloads_on_code_changes(tmp_path) -> None:
    """The README's `invoke dev`, for real, in a copy of the project so that it can be edited."""
    project = tmp_path / "project"
    for item in ("agent", "devstack", "tasks"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, project / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy(source, project / item)
    env = agent_environment(PYTHONPATH=str(project))
    with invoke_dev(project, env) as (base, ready_after):
        answer = httpx.post(
            base + "/v1/agent/infer", json={"query": "How do I roll back a Deployment?"}
        ).json()
        assert "kubectl rollout undo" in answer["answer"]
        assert (project / ".vaia" / "chroma").is_dir()  # the embedded store lives in the project

        seeded = subprocess.run(
            [sys.executable, "-m", "invoke", "seed", "--url", base],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seeded.returncode == 0, seeded.stderr
        assert f"seeded {len(shipped_documents())} documents" in seeded.stdout

        init = project / "agent" / "__init__.py"
        init.write_text(
            init.read_text().replace('__version__ = "0.1.0"', '__version__ = "9.9.9-reloaded"')
        )
        wait_until(
            lambda: httpx.get(base + "/health").json()["version"] == "9.9.9-reloaded", 30, "reload"
        )
        print(f"invoke dev: ready with the knowledge base seeded after {ready_after:.2f}s")

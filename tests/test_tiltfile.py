"""The Tiltfile, evaluated by a real Starlark interpreter with Tilt's builtins recorded against
their documented signatures (tests/support/tilt_api.py): an unknown or missing argument fails."""

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import starlark as sl

from devstack import manifests as m
from tests.conftest import ROOT
from tests.support.tilt_api import CONSTANTS, SIGNATURES

pytestmark = pytest.mark.static
# Deprecated for Kubernetes resources (Tilt warns; docs point to uvicorn-style reload or the
# restart_process extension instead).
DEPRECATED = {"restart_container"}


def signature(name: str) -> inspect.Signature:
    spec = SIGNATURES[name]
    params = []
    for param in spec["params"]:
        kind = (
            inspect.Parameter.KEYWORD_ONLY
            if param in spec["kwonly"]
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        default = inspect.Parameter.empty if param in spec["required"] else None
        params.append(inspect.Parameter(param, kind, default=default))
    if spec["varargs"]:
        params.append(inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL))
    if spec["varkw"]:
        params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    params.sort(key=lambda p: p.kind)
    return inspect.Signature(params)


@dataclass
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    def builtin(self, name: str):
        sig = signature(name)

        def record(*args, **kwargs):
            if name in DEPRECATED:
                raise ValueError(f"{name} is deprecated")
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{name}(): {exc}") from exc
            self.calls.append(Call(name, dict(bound.arguments)))
            if name == "kustomize":
                return f"<kustomize {bound.arguments['pathToDir']}>"
            return {"builtin": name, **bound.arguments}

        return record

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]


def evaluate(source: str) -> Recorder:
    recorder = Recorder()
    module = sl.Module()
    for name in SIGNATURES:
        if "." not in name:
            module.add_callable(name, recorder.builtin(name))
    for constant in (*CONSTANTS, "TRIGGER_MODE_MANUAL"):
        module[constant] = constant
    sl.eval(module, sl.parse("Tiltfile", source, sl.Dialect.extended()), sl.Globals.standard())
    return recorder


@pytest.fixture(scope="module")
def tilt() -> Recorder:
    return evaluate((ROOT / "Tiltfile").read_text())


def test_the_recorder_rejects_unknown_arguments() -> None:
    with pytest.raises(sl.StarlarkError, match="unexpected keyword argument 'restart'"):
        evaluate("docker_build('x', '.', restart=True)")
    with pytest.raises(sl.StarlarkError, match="missing a required argument"):
        evaluate("sync('agent')")
    with pytest.raises(sl.StarlarkError, match="deprecated"):
        evaluate("docker_build('x', '.', live_update=[restart_container()])")


def test_only_the_kind_context(tilt) -> None:
    [call] = tilt.called("allow_k8s_contexts")
    assert call.args["contexts"] == "kind-vaia"
    assert tilt.calls[0].name == "allow_k8s_contexts"  # before anything touches a cluster


def test_image_build_and_live_update(tilt) -> None:
    [build] = tilt.called("docker_build")
    assert build.args["ref"] == "vaia-agent" and build.args["context"] == "."
    assert build.args["target"] == "dev"
    steps = build.args["live_update"]
    assert steps[0]["builtin"] == "fall_back_on"  # fall_back_on must come first
    assert set(steps[0]["files"]) >= {"requirements/runtime.lock", "Dockerfile"}
    syncs = [s for s in steps if s["builtin"] == "sync"]
    assert syncs == [{"builtin": "sync", "local_path": "agent", "remote_path": "/app/agent"}]


def test_every_sync_source_exists_inside_the_build_context(tilt) -> None:
    [build] = tilt.called("docker_build")
    context = (ROOT / build.args["context"]).resolve()
    for step in build.args["live_update"]:
        if step["builtin"] == "sync":
            source = (ROOT / step["local_path"]).resolve()
            assert source.exists() and source.is_relative_to(context)
        if step["builtin"] == "fall_back_on":
            for file in step["files"]:
                assert (ROOT / file).exists(), file


def test_sync_target_is_where_the_dev_stage_keeps_the_code(tilt) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    dev_stage = dockerfile.split("AS dev", 1)[1].split("\nFROM ", 1)[0]
    [build] = tilt.called("docker_build")
    for step in build.args["live_update"]:
        if step["builtin"] == "sync":
            assert (
                f"COPY --chown=65532:65532 {step['local_path']} {step['remote_path']}" in dev_stage
            )
    assert "WORKDIR /app" in dev_stage and "USER 65532:65532" in dev_stage
    # The dev overlay makes that path writable (an emptyDir) for the container's user.
    pod = m.pod_spec(m.find(m.render(ROOT, "dev"), "Deployment", "vaia-agent"))
    mounts = {v["mountPath"] for v in pod["containers"][0]["volumeMounts"]}
    assert "/app/agent" in mounts


def test_manifests_come_from_the_dev_overlay(tilt) -> None:
    [call] = tilt.called("kustomize")
    assert call.args["pathToDir"] == "k8s/overlays/dev"
    [yaml_call] = tilt.called("k8s_yaml")
    assert yaml_call.args["yaml"] == "<kustomize k8s/overlays/dev>"


def test_the_built_image_is_the_one_the_manifests_use(tilt) -> None:
    [build] = tilt.called("docker_build")
    images = {
        c["image"] for w in m.workloads(m.render(ROOT, "dev")) for c in m.pod_spec(w)["containers"]
    }
    assert build.args["ref"] in images


def test_resources(tilt) -> None:
    resources = {c.args["workload"]: c.args for c in tilt.called("k8s_resource")}
    objs = m.render(ROOT, "dev")
    workloads = {w["metadata"]["name"] for w in m.workloads(objs)}
    assert set(resources) == workloads
    agent = resources["vaia-agent"]
    assert agent["port_forwards"] == "8080:8080"
    assert set(agent["resource_deps"]) == {"redis", "chromadb"}
    urls = {link["url"] for link in agent["links"]}
    assert {"http://localhost:8080/docs", "http://localhost:8080/metrics"} <= urls
    assert agent["labels"]
    # Every object named in `objects` exists in the rendered manifests.
    existing = {f"{o['metadata']['name']}:{o['kind'].lower()}" for o in objs}
    for resource in resources.values():
        for obj in resource.get("objects") or []:
            assert obj in existing, obj


def test_manual_local_resources_for_tests_and_load(tilt) -> None:
    local = {c.args["name"]: c.args for c in tilt.called("local_resource")}
    assert {"unit-tests", "loadtest"} <= set(local)
    for resource in local.values():
        assert resource["trigger_mode"] == "TRIGGER_MODE_MANUAL" and resource["auto_init"] is False
    import tasks

    for resource in local.values():
        task = re.match(r"invoke ([\w.-]+)", resource["cmd"]).group(1)
        assert task in tasks.ns.task_names, f"Tiltfile runs `invoke {task}`, which does not exist"


def test_secret_file_is_written_without_echoing_the_key(tilt) -> None:
    [call] = tilt.called("local")
    assert call.args["command"] == "python3 -m devstack.secrets k8s/base/secrets.env"
    assert call.args["echo_off"] is True and call.args["quiet"] is True
    assert "GEMINI_API_KEY" not in call.args["command"]
    assert Path(ROOT / "devstack" / "secrets.py").exists()

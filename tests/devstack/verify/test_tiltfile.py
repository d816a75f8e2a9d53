"""The Tiltfile, loaded by a real Starlark interpreter with Tilt's builtins bound to their
documented signatures (devstack/verify/tilt_api.py) and its `local()` answered by a model of
the cluster: an unknown or missing argument fails, and what it deploys is what it evaluates to."""

import re
from pathlib import Path

import pytest

from devstack.cluster.render import render, render_dir
from devstack.verify import manifests as m
from devstack.verify.apiserver import ApiServer
from devstack.verify.kind import kubectl_world
from devstack.verify.replays import load_tiltfile, prepared_kind_cluster
from devstack.verify.tiltfile import TiltfileError, TiltfileFailed, evaluate
from tests.conftest import ROOT

pytestmark = pytest.mark.static


def load_source(source: str):
    return evaluate(
        ROOT / "Tiltfile",
        context="kind-vaia",
        environ={},
        world=kubectl_world(None),
        render=render_dir,
        source=source,
    )


@pytest.fixture(scope="module")
def tilt():
    return load_tiltfile(ROOT)


def test_the_loader_rejects_unknown_missing_and_deprecated_arguments() -> None:
    with pytest.raises(TiltfileError, match="unexpected keyword argument 'restart'"):
        load_source("docker_build('x', '.', restart=True)")
    with pytest.raises(TiltfileError, match="missing a required argument"):
        load_source("sync('agent')")
    with pytest.raises(TiltfileError, match="deprecated"):
        load_source("docker_build('x', '.', live_update=[restart_container()])")
    with pytest.raises(TiltfileError, match="not modelled"):
        load_source("local('rm -rf /tmp/x')")  # every local() must be modelled


def test_only_the_kind_context_and_it_is_checked_before_anything_else(tilt) -> None:
    [call] = tilt.called("allow_k8s_contexts")
    assert call.args["contexts"] == "kind-vaia"
    names = [c.name for c in tilt.calls]
    assert names[0] == "k8s_context"
    first_effect = min(names.index(n) for n in ("local", "docker_build", "k8s_yaml"))
    assert names.index("allow_k8s_contexts") < first_effect


@pytest.mark.parametrize(
    ("context", "cluster", "reason"),
    [
        ("kind-kind", "prepared", "needs the kube context kind-vaia (current: kind-kind)"),
        ("docker-desktop", "prepared", "needs the kube context kind-vaia"),
        ("minikube", "prepared", "needs the kube context kind-vaia"),
        ("kind-vaia", "new", "kind-vaia has no local registry"),
        ("kind-vaia", "no registry ConfigMap", "kind-vaia has no local registry"),
        ("kind-vaia", "no metrics-server", "kind-vaia has no metrics-server"),
        ("kind-vaia", "down", "the kind-vaia cluster does not answer"),
    ],
)
def test_tilt_up_on_its_own_stops_at_once_with_one_line_naming_cluster_up(
    context, cluster, reason
) -> None:
    server = {
        "prepared": prepared_kind_cluster(ROOT),
        "new": ApiServer.kind(),
        "no registry ConfigMap": prepared_kind_cluster(ROOT),
        "no metrics-server": prepared_kind_cluster(ROOT),
        "down": None,
    }[cluster]
    if cluster == "no registry ConfigMap":
        del server.objects[("ConfigMap", "kube-public", "local-registry-hosting")]
    if cluster == "no metrics-server":
        del server.objects[("APIService", "", "v1beta1.metrics.k8s.io")]
    with pytest.raises(TiltfileFailed) as failed:
        load_tiltfile(ROOT, context=context, world=kubectl_world(server))
    message = failed.value.message
    assert reason in message and "`invoke cluster.up`" in message
    assert "\n" not in message


def test_nothing_is_built_or_deployed_before_the_preflight_passes() -> None:
    source = (ROOT / "Tiltfile").read_text()
    with pytest.raises(TiltfileFailed):
        evaluate(
            ROOT / "Tiltfile",
            context="kind-vaia",
            environ={},
            world=kubectl_world(ApiServer.kind()),
            render=lambda path: pytest.fail(f"rendered {path} before the preflight passed"),
            source=source,
        )


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
    pod = m.pod_spec(m.find(tilt.entities, "Deployment", "vaia-agent"))
    mounts = {v["mountPath"] for v in pod["containers"][0]["volumeMounts"]}
    assert "/app/agent" in mounts


def test_what_tilt_deploys_is_the_dev_overlay(tilt) -> None:
    [call] = tilt.called("kustomize")
    assert call.args["pathToDir"] == "k8s/overlays/dev"
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render(ROOT, "dev")}
    assert {(o["kind"], o["metadata"]["name"]) for o in tilt.entities} == rendered


def test_the_built_image_is_the_one_the_manifests_use(tilt) -> None:
    [build] = tilt.called("docker_build")
    images = {c["image"] for w in m.workloads(tilt.entities) for c in m.pod_spec(w)["containers"]}
    assert build.args["ref"] in images


def test_resources_are_labelled_and_linked(tilt) -> None:
    resources = {
        c.args.get("workload") or c.args["new_name"]: c.args for c in tilt.called("k8s_resource")
    }
    workloads = {w["metadata"]["name"] for w in m.workloads(tilt.entities)}
    assert workloads <= set(resources)
    for name, resource in resources.items():
        assert resource.get("labels"), f"{name} has no label in the Tilt UI"
    agent = resources["vaia-agent"]
    assert agent["port_forwards"] == "8080:8080"
    urls = {link["url"] for link in agent["links"]}
    assert {"http://localhost:8080/docs", "http://localhost:8080/metrics"} <= urls


def test_manual_local_resources_for_tests_and_load(tilt) -> None:
    local = {c.args["name"]: c.args for c in tilt.called("local_resource")}
    assert {"unit-tests", "loadtest"} <= set(local)
    for resource in local.values():
        assert resource["trigger_mode"] == "TRIGGER_MODE_MANUAL" and resource["auto_init"] is False
    import tasks

    for resource in local.values():
        task = re.match(r"invoke ([\w.-]+)", resource["cmd"]).group(1)
        assert task in tasks.ns.task_names, f"Tiltfile runs `invoke {task}`, which does not exist"


def test_the_key_goes_into_the_secret_in_memory_only(tilt) -> None:
    loaded = load_tiltfile(ROOT, environ={"GEMINI_API_KEY": "k-tilt-123"})
    secret = m.find(loaded.entities, "Secret", "vaia-agent-secrets")
    assert secret["stringData"]["GEMINI_API_KEY"] == "k-tilt-123"
    assert not any("k-tilt-123" in command for command in loaded.local_commands)
    assert not any("GEMINI_API_KEY" in command for command in loaded.local_commands)
    # Without a key the committed empty value stays: the offline provider answers.
    assert m.find(tilt.entities, "Secret", "vaia-agent-secrets")["stringData"] == {
        "CHROMA_HOST": "chromadb",
        "GEMINI_API_KEY": "",
    }
    assert Path(ROOT / "k8s" / "base" / "agent-secret.yaml").exists()

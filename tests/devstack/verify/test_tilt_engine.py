"""A first `tilt up` on an empty kind cluster, replayed with Tilt's own rules: how it groups
objects into resources (tilt-dev/tilt internal/tiltfile/tiltfile_state.go, assembleK8sByWorkload,
assembleK8sUnresourced, the `objects=` fragments of k8s_resource, `uncategorized`) and in what
order its engine applies them (internal/engine/buildcontrol/build_control.go, NextTargetToBuild:
local resources, then uncategorized while every Kubernetes resource waits, then resources without
an image build; resource_deps wait for readiness; up to three updates at once; a failed apply is
not retried), against the API server's rules (devstack/verify/apiserver.py). It runs on what the
Tiltfile really evaluates to, and fails on the first round's Tiltfile, which deadlocked."""

import pytest

from devstack.verify import replays
from devstack.verify.kind import kubectl_world
from devstack.verify.tilt_engine import UNCATEGORIZED, assemble
from devstack.verify.tiltfile import TiltfileError
from tests.conftest import ROOT

pytestmark = pytest.mark.static
FIRST_ROUND = ROOT / "tests" / "fixtures" / "Tiltfile.first-round"


def load(source: str):
    server = replays.prepared_kind_cluster(ROOT)
    world = kubectl_world(server)

    def answer(command: str) -> str:
        # The first round's Tiltfile wrote a git-ignored env file; it printed nothing Tilt used.
        return "" if command.startswith("python3 -m devstack.secrets") else world(command)

    return replays.load_tiltfile(ROOT, world=answer, source=source)


def tiltfile() -> str:
    return (ROOT / "Tiltfile").read_text()


def test_a_first_tilt_up_brings_every_auto_started_resource_to_ready() -> None:
    replay = replays.tilt_up(ROOT)
    assert replay.problems == []
    auto = {r.name for r in replay.resources if r.auto_init}
    assert auto == {"vaia-namespace", "redis", "chromadb", "vaia-agent"}
    assert all(replay.outcomes[name].ready for name in auto)
    # The namespace first, the stores together, then the agent; the manual buttons never run.
    assert [sorted(r) for r in replay.rounds] == [
        ["vaia-namespace"],
        ["chromadb", "redis"],
        ["vaia-agent"],
    ]


def test_the_first_rounds_tiltfile_deadlocks_exactly_as_tilt_would() -> None:
    replay = replays.tilt_up(ROOT, load(FIRST_ROUND.read_text()))
    assert not replay.ok
    assert replay.rounds == [["chromadb", "redis"]]
    problems = "\n".join(replay.problems)
    for store in ("redis", "chromadb"):
        assert (
            f'{store}: the apply fails: Service vaia/{store}: namespaces "vaia" not found '
            f"(Namespace vaia is in resource vaia-agent, which Tilt does not order before {store})"
        ) in problems
    assert "vaia-agent: never starts: it waits for redis, chromadb" in problems


def test_objects_left_uncategorized_are_applied_first_while_the_rest_waits() -> None:
    # Tilt's own remedy: leave the Namespace to `uncategorized`, which Tilt applies before any
    # Kubernetes resource (HoldK8sTargets), and drop the explicit resource.
    source = (
        tiltfile()
        .replace(
            "k8s_resource(new_name='vaia-namespace', objects=['vaia:namespace'], labels=['setup'])\n",
            "",
        )
        .replace("resource_deps=['vaia-namespace'], ", "")
        .replace("    resource_deps=['vaia-namespace'],\n", "")
    )
    replay = replays.tilt_up(ROOT, load(source))
    assert replay.problems == []
    assert replay.rounds[0] == [UNCATEGORIZED]


def test_a_store_without_its_dependency_on_the_namespace_is_a_race_the_replay_catches() -> None:
    source = tiltfile().replace(
        "k8s_resource('redis', resource_deps=['vaia-namespace'], ", "k8s_resource('redis', "
    )
    assert source != tiltfile()
    replay = replays.tilt_up(ROOT, load(source))
    # Tilt starts redis together with the namespace: nothing orders them.
    assert sorted(replay.rounds[0]) == ["redis", "vaia-namespace"]
    assert any(
        p.startswith('redis: the apply fails: Service vaia/redis: namespaces "vaia"')
        for p in replay.problems
    )


def test_a_pod_whose_secret_never_comes_is_never_ready_and_holds_its_dependents() -> None:
    model = load(tiltfile())
    model.entities = [o for o in model.entities if o["kind"] != "Secret"]
    with pytest.raises(TiltfileError, match="no object in the remaining YAML match"):
        replays.tilt_up(ROOT, model)  # Tilt refuses an `objects=` entry that matches nothing
    source = tiltfile().replace("        'vaia-agent-secrets:secret',\n", "")
    model = load(source)
    model.entities = [o for o in model.entities if o["kind"] != "Secret"]
    replay = replays.tilt_up(ROOT, model)
    [problem] = replay.problems
    assert problem.startswith("vaia-agent: never ready: Deployment vaia-agent: Secret")
    assert "vaia-agent-secrets does not exist" in problem


def test_a_resource_dep_on_a_resource_that_is_never_ready_blocks_forever() -> None:
    source = tiltfile().replace(
        "    resource_deps=['redis', 'chromadb'],",
        "    resource_deps=['redis', 'chromadb', 'loadtest'],",
    )
    replay = replays.tilt_up(ROOT, load(source))
    assert replay.problems == ["vaia-agent: never starts: it waits for loadtest"]


def test_grouping_follows_tilts_rules() -> None:
    resources = {r.name: r for r in assemble(load(tiltfile()))}
    kinds = {name: sorted(o["kind"] for o in r.entities) for name, r in resources.items()}
    # Services join their workload by selector; the rest only where objects= puts it.
    assert kinds["redis"] == ["NetworkPolicy", "Service", "StatefulSet"]
    assert kinds["vaia-namespace"] == ["Namespace"]
    assert resources["vaia-agent"].images == ["vaia-agent"]
    assert resources["vaia-namespace"].pod_readiness == "ignore"
    assert UNCATEGORIZED not in resources


def test_tilts_load_errors_are_reproduced() -> None:
    with pytest.raises(TiltfileError, match="unknown resource 'redsi'"):
        assemble(load(tiltfile() + "\nk8s_resource('redsi', labels=['x'])\n"))
    with pytest.raises(
        TiltfileError, match="no object in the remaining YAML match 'vaia:namespace'"
    ):
        assemble(load(tiltfile() + "\nk8s_resource('redis', objects=['vaia:namespace'])\n"))
    with pytest.raises(TiltfileError, match="depends on unknown 'nope'"):
        assemble(load(tiltfile() + "\nk8s_resource('redis', resource_deps=['nope'])\n"))


@pytest.mark.parametrize("overlay", ["dev", "ci", "prod"])
def test_what_invoke_deploy_applies_comes_up_on_an_empty_cluster(overlay) -> None:
    assert replays.deploy(ROOT, overlay) == []


def test_the_deploy_replay_catches_a_stream_in_the_wrong_order_and_a_missing_secret() -> None:
    from devstack.cluster.deploy import manifests_for
    from devstack.verify.tilt_engine import replay_kubectl_apply

    stream = manifests_for(ROOT, "ci", replays.PINNED_IMAGE, environ={})
    namespace_last = [o for o in stream if o["kind"] != "Namespace"] + [stream[0]]
    assert stream[0]["kind"] == "Namespace"  # kustomize's order
    problems = replay_kubectl_apply(namespace_last, replays.deploy_target(ROOT, "ci"))
    assert len([p for p in problems if 'namespaces "vaia" not found' in p]) == len(stream) - 1
    no_secret = [o for o in stream if o["kind"] != "Secret"]
    problems = replay_kubectl_apply(no_secret, replays.deploy_target(ROOT, "ci"))
    assert problems == [
        "Deployment vaia-agent never ready: Secret vaia-agent-secrets does not exist"
    ]

"""cluster.up / cluster.down against a simulated docker + kind + kubectl that records every call."""

import json
from dataclasses import dataclass, field

import pytest

from devstack.cluster.kind import REGISTRY_HOSTS_TOML, ClusterCli, cluster_down, cluster_up
from devstack.core.errors import MissingToolError
from devstack.core.runner import Result, Runner
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

MUTATIONS = ("run", "start", "create", "connect", "cp", "mkdir", "delete", "rm")


@dataclass
class World:
    """Just enough docker, kind and kubectl to answer what cluster.py asks."""

    registry: str | None = None  # None, "running" or "stopped"
    networks: set[str] = field(default_factory=lambda: {"bridge"})
    clusters: dict[str, list[str]] = field(default_factory=dict)
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv, how) -> Result:
        """The runner's `execute`: what the tools would answer."""
        argv = [argv[0].rsplit("/", 1)[-1], *argv[1:]]
        self.calls.append(argv)
        return getattr(self, argv[0])(argv[1:], how.stdin)

    def docker(self, args, stdin) -> Result:
        match args:
            case ["inspect", "-f", "{{.State.Running}}", "kind-registry"]:
                if self.registry is None:
                    return Result(1, "", "No such object")
                return Result(0, "true\n" if self.registry == "running" else "false\n")
            case ["start", "kind-registry"]:
                self.registry = "running"
            case [
                "run",
                "-d",
                "--restart=always",
                "--name",
                "kind-registry",
                "-p",
                "127.0.0.1:5001:5000",
                "registry:2",
            ]:
                self.registry = "running"
            case ["exec", node, "cat", path]:
                return (
                    Result(0, self.files[(node, path)]) if (node, path) in self.files else Result(1)
                )
            case ["exec", node, "mkdir", "-p", _]:
                pass
            case ["exec", "-i", node, "cp", "/dev/stdin", path]:
                self.files[(node, path)] = stdin
            case ["inspect", "-f", "{{json .NetworkSettings.Networks}}", "kind-registry"]:
                return Result(0, json.dumps({n: {} for n in self.networks}))
            case ["network", "connect", "kind", "kind-registry"]:
                self.networks.add("kind")
            case ["inspect", "kind-registry"]:
                return Result(0 if self.registry else 1)
            case ["rm", "-f", "kind-registry"]:
                self.registry = None
                self.networks = {"bridge"}
            case _:
                raise AssertionError(f"unexpected docker {args}")
        return Result(0)

    def kind(self, args, stdin) -> Result:
        match args:
            case ["get", "clusters"]:
                return Result(0, "\n".join(self.clusters))
            case ["create", "cluster", "--name", name, "--config", config, "--wait", _]:
                assert config == str(ROOT / "kind-config.yaml")
                self.clusters[name] = [f"{name}-control-plane", f"{name}-worker"]
            case ["get", "nodes", "--name", name]:
                return Result(0, "\n".join(self.clusters.get(name, [])))
            case ["delete", "cluster", "--name", name]:
                self.clusters.pop(name)
            case _:
                raise AssertionError(f"unexpected kind {args}")
        return Result(0)

    def kubectl(self, args, stdin) -> Result:
        assert args[:2] == ["--context", "kind-vaia"], "every kubectl call names the kind context"
        return Result(0)

    def mutations(self) -> list[str]:
        return [
            " ".join(c)
            for c in self.calls
            if c[0] in ("docker", "kind") and set(c[1:5]) & set(MUTATIONS)
        ]


def tools_for(world: World, missing: str | None = None) -> ClusterCli:
    def resolve(name: str) -> list[str]:
        if name == missing:
            raise MissingToolError(f"{name} not found: install it")
        return [f"/fake/{name}"]

    return ClusterCli(Runner(resolve=resolve, execute=world))


def test_first_run_creates_everything_in_order() -> None:
    world = World()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    hosts = "/etc/containerd/certs.d/localhost:5001/hosts.toml"
    assert world.mutations() == [
        "docker run -d --restart=always --name kind-registry -p 127.0.0.1:5001:5000 registry:2",
        f"kind create cluster --name vaia --config {ROOT / 'kind-config.yaml'} --wait 120s",
        "docker exec vaia-control-plane mkdir -p /etc/containerd/certs.d/localhost:5001",
        f"docker exec -i vaia-control-plane cp /dev/stdin {hosts}",
        "docker exec vaia-worker mkdir -p /etc/containerd/certs.d/localhost:5001",
        f"docker exec -i vaia-worker cp /dev/stdin {hosts}",
        "docker network connect kind kind-registry",
    ]
    assert world.files == {
        ("vaia-control-plane", hosts): REGISTRY_HOSTS_TOML,
        ("vaia-worker", hosts): REGISTRY_HOSTS_TOML,
    }
    kubectl = [" ".join(c[3:]) for c in world.calls if c[0] == "kubectl"]
    assert kubectl == [
        f"apply -f {ROOT / 'k8s/cluster/local-registry-hosting.yaml'}",
        f"apply -k {ROOT / 'k8s/cluster/metrics-server'}",
        "-n kube-system rollout status deployment/metrics-server --timeout=180s",
        "wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=180s",
    ]


def test_second_run_changes_nothing() -> None:
    world = World()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    before = (world.registry, set(world.networks), dict(world.clusters), dict(world.files))
    world.calls.clear()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    assert world.mutations() == []
    assert (world.registry, set(world.networks), dict(world.clusters), dict(world.files)) == before


def test_a_stopped_registry_is_started_not_recreated() -> None:
    world = World(registry="stopped")
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    assert world.mutations()[0] == "docker start kind-registry"
    assert not any(m.startswith("docker run") for m in world.mutations())


def test_a_node_with_a_stale_hosts_file_is_rewritten() -> None:
    world = World()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    world.files[("vaia-worker", "/etc/containerd/certs.d/localhost:5001/hosts.toml")] = "stale"
    world.calls.clear()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    assert [m for m in world.mutations() if "cp" in m] == [
        "docker exec -i vaia-worker cp /dev/stdin /etc/containerd/certs.d/localhost:5001/hosts.toml"
    ]


@pytest.mark.parametrize("missing", ["docker", "kind", "kubectl"])
def test_a_missing_tool_stops_before_anything_runs(missing) -> None:
    world = World()
    with pytest.raises(MissingToolError, match=f"{missing} not found: install it"):
        cluster_up(tools_for(world, missing=missing), ROOT, log=lambda _: None)
    assert world.calls == []


def test_down_removes_cluster_and_registry_and_is_idempotent() -> None:
    world = World()
    cluster_up(tools_for(world), ROOT, log=lambda _: None)
    cluster_down(tools_for(world), log=lambda _: None)
    assert world.clusters == {} and world.registry is None
    world.calls.clear()
    cluster_down(tools_for(world), log=lambda _: None)
    assert world.mutations() == []


def test_tasks_turn_a_missing_tool_into_a_clear_exit(monkeypatch) -> None:
    from invoke import Exit, MockContext

    from tasks import cluster

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exit) as info:
        cluster.create(MockContext())
    assert info.value.code == 127
    assert "not found:" in str(info.value.message)


def test_invoke_up_runs_cluster_up_then_tilt_and_tilt_ci_with_ci(monkeypatch) -> None:
    from invoke import MockContext

    from tasks import cluster

    for ci, command in ((False, "up"), (True, "ci")):
        world = World()
        world.tilt = lambda args, stdin: Result(0)  # type: ignore[attr-defined]
        runner = Runner(resolve=lambda name: [f"/fake/{name}"], execute=world)
        monkeypatch.setattr(cluster, "runner", lambda runner=runner: runner)
        cluster.inner_loop_up(MockContext(), ci=ci)
        tilt = [c for c in world.calls if c[0] == "tilt"]
        tiltfile = str(ROOT / "Tiltfile")
        expected = ["tilt", command, "--file", tiltfile, "--context", "kind-vaia"]
        assert tilt == [expected + (["--timeout", "20m"] if ci else [])]
        assert world.calls.index(tilt[0]) > max(
            i for i, c in enumerate(world.calls) if c[0] == "kubectl"
        ), "tilt starts after cluster.up finished"

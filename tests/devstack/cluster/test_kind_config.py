"""kind-config.yaml and what `invoke cluster.up` adds to it: the contract no real component
checks, the additions, and kind's own strict validation, for real."""

import subprocess

import pytest
import yaml

from devstack.cluster import kind_config
from devstack.core.tools import require
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def config() -> dict:
    return kind_config.load(ROOT)


@pytest.mark.static
def test_kind_config_is_the_cluster_cluster_up_expects(config) -> None:
    assert kind_config.contract_problems(config) == []
    assert config["name"] == "vaia" and [n["role"] for n in config["nodes"]] == [
        "control-plane",
        "worker",
    ]


@pytest.mark.static
def test_the_contract_check_catches_each_mistake(config) -> None:
    wrong = {
        **config,
        "name": "dev",
        "containerdConfigPatches": [],
        "nodes": [{"role": "worker", "extraPortMappings": [{"containerPort": 80, "hostPort": 80}]}],
    }
    found = kind_config.contract_problems(wrong)
    assert len(found) == 3 and "beyond loopback" in found[2]


@pytest.mark.unit
def test_a_laptop_run_gets_kind_config_yaml_as_it_is(config) -> None:
    assert kind_config.effective(config) == config


@pytest.mark.unit
def test_this_host_s_run_adds_only_what_it_needs_through_kind_s_own_fields(config) -> None:
    added = kind_config.effective(
        config, "kindest/node:v1.32.2-local", default_cni=False, restrict_oom_score_adj=True
    )
    assert {n["image"] for n in added["nodes"]} == {"kindest/node:v1.32.2-local"}
    assert added["networking"] == {"disableDefaultCNI": True}
    assert (
        added["containerdConfigPatches"][: len(config["containerdConfigPatches"])]
        == (config["containerdConfigPatches"])
    )
    assert "restrict_oom_score_adj = true" in added["containerdConfigPatches"][-1]
    assert config["nodes"][0]["image"].startswith("kindest/node:v1.32.2@sha256:")  # unchanged


@pytest.mark.container
def test_kind_itself_refuses_a_field_it_does_not_know(config, tmp_path, docker) -> None:
    """The mistakes the removed model of kind's fields caught, caught by kind, before it
    creates anything."""
    for broken, says in [
        (
            {**config, "name": "vaia-broken", "node": []},
            "field node not found in type v1alpha4.Cluster",
        ),
        ({**config, "name": "vaia-broken", "nodes": [{"role": "master"}]}, "master"),
    ]:
        path = tmp_path / "kind-config.yaml"
        path.write_text(yaml.safe_dump(broken))
        done = subprocess.run(
            [require("kind"), "create", "cluster", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0 and says in done.stderr, done.stderr
    assert "vaia-broken" not in docker.run(["ps", "-a", "--format", "{{.Names}}"]).stdout

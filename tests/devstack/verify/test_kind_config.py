"""kind-config.yaml against kind's v1alpha4 API (devstack/verify/kind_config.py)."""

import pytest
import yaml

from devstack.verify.kind_config import contract_problems, problems
from tests.conftest import ROOT

pytestmark = pytest.mark.static


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "kind-config.yaml").read_text())


def test_kind_config_uses_only_v1alpha4_fields(config) -> None:
    assert problems(config) == []


def test_cluster_name_and_registry_config_path(config) -> None:
    assert contract_problems(config) == []
    assert config["name"] == "vaia"


def test_the_checker_catches_mistakes(config) -> None:
    assert problems({**config, "node": []}) == ["unknown cluster field node"]
    bad_node = {
        **config,
        "nodes": [{"role": "master", "extraPortMappings": [{"containerPort": 80, "hostPort": 80}]}],
    }
    assert len(problems(bad_node)) == 3  # role, beyond loopback, no control plane
    assert len(contract_problems({**config, "name": "dev", "containerdConfigPatches": []})) == 2

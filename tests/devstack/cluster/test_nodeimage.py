"""The node image's recipe: the same inputs give the same recipe in every build (the scratch
folder each build compiles pause into has a new path each time), so a warm machine reuses the node
image instead of building it again; a changed input changes it. The build itself runs in the
cluster tier (the `kind_cluster` fixture)."""

import pytest

from devstack.cluster import nodeimage
from devstack.core.process import Result
from devstack.core.runner import Runner

pytestmark = pytest.mark.unit


def recipes(work) -> dict[str, str]:
    runner = Runner(resolve=lambda tool: [f"/usr/bin/{tool}"], execute=lambda argv, how: Result(0))
    return {c.name: c.recipe() for c in nodeimage.components(runner, work, "debian:stand-in")}


def test_two_builds_in_two_scratch_folders_have_the_same_recipes(tmp_path) -> None:
    first, second = recipes(tmp_path / "one"), recipes(tmp_path / "two")
    assert first == second
    assert len(first) == len(set(first.values()))  # one recipe per image


def test_another_base_changes_the_recipes_built_on_it(tmp_path) -> None:
    runner = Runner(resolve=lambda tool: [f"/usr/bin/{tool}"], execute=lambda argv, how: Result(0))
    other = {c.name: c.recipe() for c in nodeimage.components(runner, tmp_path, "debian:other")}
    changed = {name for name, recipe in recipes(tmp_path).items() if other[name] != recipe}
    assert changed == {nodeimage.FLANNEL_IMAGE, next(n for n in other if "kube-proxy" in n)}

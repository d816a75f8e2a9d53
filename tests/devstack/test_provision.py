"""`invoke setup`'s decisions (the run itself is the first step of every `.ci/run`)."""

import dataclasses

import pytest

from devstack import provision
from devstack.core import tools
from devstack.core.errors import MissingToolError
from devstack.core.runner import Runner

pytestmark = pytest.mark.unit


def test_every_package_apt_installs_gives_a_tool_of_the_tool_table() -> None:
    assert set(provision.APT_PACKAGES) <= set(tools.TOOLS)


def test_without_root_the_missing_packages_are_named_in_one_line(monkeypatch) -> None:
    monkeypatch.setitem(
        tools.TOOLS,
        "wrk",
        dataclasses.replace(tools.TOOLS["wrk"], binary="/nonexistent/wrk", locate=lambda: None),
    )
    ran: list[list[str]] = []
    runner = Runner(resolve=lambda tool: [tool], execute=lambda argv, how: ran.append(argv))
    with pytest.raises(MissingToolError) as failed:
        provision.install_packages(runner, print, root=False)
    assert str(failed.value).startswith("system packages missing: run as root: apt-get update")
    assert " wrk" in str(failed.value) and ran == []

"""What a machine needs per tier, and `invoke test`'s preflight."""

import pytest

from devstack.core import preflight as setup
from devstack.core import tools
from devstack.core.errors import MissingToolError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "tiers"),
    [
        ("", list(setup.TIERS)),
        ("unit", ["unit"]),
        ("unit or static", ["unit", "static"]),
        ("not container and not cluster", ["unit", "integration", "static", "load"]),
        ("integration and not slow", ["integration"]),
        ("slow", list(setup.TIERS)),  # any tier may have slow tests
        ("(unit or load) and not slow", ["unit", "load"]),
    ],
)
def test_a_marker_expression_selects_the_tiers_it_can_match(expression, tiers) -> None:
    assert setup.selected_tiers(expression) == tiers


def status(found: set[str]):
    def inspect(name: str) -> tools.ToolStatus:
        tool = tools.TOOLS[name]
        if name in found:
            return tools.ToolStatus(tool, [f"/usr/bin/{name}"], "1.0", None)
        return tools.ToolStatus(tool, None, None, f"{name} not found: {tool.install}")

    return inspect


def test_the_preflight_names_each_missing_tool_once_with_its_tiers_and_install_line() -> None:
    lines: list[str] = []
    everything = {t for tier in setup.TIERS for t in setup.TIER_TOOLS[tier]}
    with pytest.raises(MissingToolError, match=r"2 tool\(s\) missing .* `invoke setup`"):
        setup.preflight(
            ["integration", "container"], lines.append, status(everything - {"git", "wrk"})
        )
    assert lines == [
        "missing for the integration tier(s): wrk not found: apt-get install -y wrk",
        "missing for the integration, container tier(s): git not found: apt-get install -y git",
    ]


def test_nothing_is_said_when_the_selected_tiers_have_their_tools() -> None:
    lines: list[str] = []
    setup.preflight(["unit", "load"], lines.append, status({"git", "locust"}))
    assert lines == []


def test_every_tool_a_tier_needs_is_in_the_tool_table() -> None:
    for tier, needed in setup.TIER_TOOLS.items():
        assert set(needed) <= set(tools.TOOLS), tier

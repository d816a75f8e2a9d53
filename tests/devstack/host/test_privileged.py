import pytest

from devstack.host import privileged
from devstack.host.privileged import HostState, daemon_config, kernel_capabilities

pytestmark = pytest.mark.unit


def test_the_missing_capability_is_what_the_kernel_has_and_the_bounding_set_lacks() -> None:
    status = "CapBnd:\t000001fffeffffff\n"  # this sandbox
    held = privileged.held_capabilities(status)
    assert privileged.missing_capabilities(held, kernel_capabilities(40)) == ["CAP_SYS_RESOURCE"]
    assert (
        privileged.missing_capabilities(held | {"CAP_SYS_RESOURCE"}, kernel_capabilities(40)) == []
    )
    # An older kernel that knows fewer capabilities asks for fewer.
    assert "CAP_CHECKPOINT_RESTORE" not in kernel_capabilities(39)


def test_only_an_old_docker_on_a_short_bounding_set_needs_the_wrapper() -> None:
    assert HostState(["CAP_SYS_RESOURCE"], (20, 10), "runc").needs_wrapper
    assert not HostState(["CAP_SYS_RESOURCE"], (24, 0), "runc").needs_wrapper
    assert not HostState([], (20, 10), "runc").needs_wrapper
    assert "nothing to adapt" in HostState([], (20, 10), "runc").line()
    assert "asks only for its own" in HostState(["CAP_SYS_RESOURCE"], (27, 3), "runc").line()
    assert (
        "`invoke setup` (as root) installs"
        in HostState(["CAP_SYS_RESOURCE"], (20, 10), "runc").line()
    )


def test_daemon_json_keeps_every_other_setting() -> None:
    current = {"log-level": "warn", "runtimes": {"gvisor": {"path": "/usr/bin/runsc"}}}
    config = daemon_config(current)
    assert config["log-level"] == "warn" and config["default-runtime"] == privileged.RUNTIME
    assert config["runtimes"] == {
        "gvisor": {"path": "/usr/bin/runsc"},
        privileged.RUNTIME: {"path": str(privileged.WRAPPER)},
    }
    assert current["runtimes"] == {"gvisor": {"path": "/usr/bin/runsc"}}  # not changed in place


def test_the_installed_wrapper_names_the_host_s_runc_and_python() -> None:
    source = privileged.wrapper_source("/usr/sbin/runc", "/usr/bin/python3")
    assert source.startswith("#!/usr/bin/python3 -I\n")
    assert '\nRUNC = "/usr/sbin/runc"' in source
    compile(source, "runc-wrapper", "exec")

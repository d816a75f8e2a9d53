"""kind's nodes are privileged containers: on this host they start only through the runtime
wrapper `invoke setup` installs (and fail with runc alone, which is why it is there)."""

import pytest

from devstack.host import privileged

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def host(docker):
    state = privileged.state(docker.runner)
    if state.needs_wrapper and not state.configured:
        pytest.fail(f"{state.line()}: the container tier needs `invoke setup` first")
    return state


@pytest.fixture(scope="module")
def image(docker) -> str:
    """The builder stand-in: any image with grep and sleep."""
    from devstack.image.standins import ensure_base_images

    return ensure_base_images(docker, lambda _: None).builder


def test_a_privileged_container_starts_with_what_the_host_can_grant(docker, host, image) -> None:
    done = docker.run(["run", "--rm", "--privileged", image, "grep", "CapBnd", "/proc/self/status"])
    mask = int(done.stdout.split()[1], 16)
    held = privileged.held_capabilities(f"CapBnd:\t{mask:016x}\n")
    assert not held & set(host.missing)
    # What makes it privileged (an unprivileged container has none of these).
    assert {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE"} <= held
    # docker exec into it is a runc `exec` with a process file: it works too.
    name = "vaia-privileged-probe"
    docker.run(["run", "-d", "--rm", "--privileged", "--name", name, image, "sleep", "60"])
    try:
        assert docker.run(["exec", name, "true"]).returncode == 0
    finally:
        docker.run(["rm", "-f", name], check=False)


def test_without_the_wrapper_runc_refuses_here(docker, host, image) -> None:
    if not host.needs_wrapper:
        pytest.skip(host.line())
    done = docker.run(
        ["run", "--rm", "--runtime", "runc", "--privileged", image, "true"], check=False
    )
    assert done.returncode != 0 and "unable to apply caps: operation not permitted" in done.stderr

"""Live update for real: the pinned Tilt's `tilt up` on kind's nodes syncs an edit
under agent/ into the running pod, where uvicorn's reload serves it, and rebuilds the image when
a dependency changes; the user's tree is never touched (the session works on a copy)."""

import subprocess

import pytest

from devstack.cluster.cli import ClusterCli
from devstack.cluster.tilt import tilt_build_env
from devstack.core.errors import DevstackError
from devstack.core.names import CONTEXT
from devstack.core.runner import Runner
from devstack.image.docker import Docker
from devstack.perf.tilt_session import TiltSession
from tests.support.cluster import ROOT, checkout_copy, fresh_namespace

pytestmark = pytest.mark.cluster


def test_an_edit_under_agent_is_served_by_the_running_pod(kind_cluster) -> None:
    before = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    fresh_namespace()  # what `tilt up` meets first on a laptop (an invoke deploy would differ)
    cli = ClusterCli(Runner(), CONTEXT)
    with TiltSession(cli, ROOT, tilt_build_env(Docker(), offline=True)) as tilt:
        pods = tilt.cli.kubectl(
            "-n", "vaia", "get", "pods", "-l", "app.kubernetes.io/name=vaia-agent", "-o", "name"
        ).stdout.split()
        with tilt.agent() as url:
            served = tilt.edit_and_wait(url)
        assert served.version.startswith("0.1.0+live.")
        # Synced into the pods in place: the same pods, no new image.
        after = tilt.cli.kubectl(
            "-n", "vaia", "get", "pods", "-l", "app.kubernetes.io/name=vaia-agent", "-o", "name"
        ).stdout.split()
        assert after == pods
        # A dependency change (Tilt's fall_back_on): a rebuilt image, rolled out, serving. What
        # the emulator's container test showed before the real Tilt ran here.
        image = tilt.deployed_image()
        tilt.dependency_change()
        assert tilt.deployed_image() != image
    assert (
        subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
        ).stdout
        == before
    )


def test_a_failed_build_ends_the_session_with_tilts_error_and_leaves_no_tilt(
    kind_cluster, tmp_path
) -> None:
    broken = checkout_copy(tmp_path / "checkout")
    dockerfile = broken / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace(
            "FROM builder AS dev\n",
            "FROM builder AS dev\nRUN echo 'the dev stage breaks' && false\n",
        )
    )
    subprocess.run(["git", "init", "-q", str(broken)], check=True)  # the session copies it
    fresh_namespace()
    cli = ClusterCli(Runner(), CONTEXT)
    session = TiltSession(cli, broken, tilt_build_env(Docker(), offline=True))
    with pytest.raises(DevstackError, match="Tilt's update of vaia-agent failed"):
        session.__enter__()
    assert session.tilt is not None and session.tilt.poll() is not None  # stopped, not leaked

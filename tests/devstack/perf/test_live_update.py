"""Tilt's live update, emulated for real against the `dev` image (no cluster can run here)."""

import pytest

from devstack.perf.live_update import LiveUpdateEmulator, dependency_change
from tests.conftest import ROOT
from tests.support.processes import free_port

pytestmark = pytest.mark.container


def test_a_synced_edit_is_served_without_a_rebuild(docker, dev_image) -> None:
    with LiveUpdateEmulator(docker, dev_image, free_port()) as pod:
        assert pod.version() == "0.1.0"
        first = pod.edit_and_wait(ROOT)
        assert pod.version() == first.version
        second = pod.edit_and_wait(ROOT)  # and again: the reloader keeps watching
        assert pod.version() == second.version
        print(
            f"edit-to-serve: {first.edit_to_serve_seconds:.2f}s, {second.edit_to_serve_seconds:.2f}s"
        )
        # The container's root stays read-only: the sync could only write the code volume.
        probe = docker.run(["exec", pod.name, "sh", "-c", "touch /app/x 2>&1 || echo refused"])
        assert "refused" in probe.stdout or "Read-only" in probe.stdout


def test_a_sync_as_another_user_cannot_write(docker, dev_image) -> None:
    with LiveUpdateEmulator(docker, dev_image, free_port()) as pod:
        denied = docker.run(
            ["exec", "-u", "1234", pod.name, "sh", "-c", "touch /app/agent/x 2>&1 || echo denied"]
        )
        assert "denied" in denied.stdout or "Permission" in denied.stdout


def test_a_dependency_change_rebuilds_the_image_and_a_new_pod_serves_it(docker) -> None:
    """Tilt's fall_back_on path: the lock is not synced, the dev image is rebuilt from the
    dependency layer on, and a new pod from it serves."""
    change = dependency_change(docker, ROOT, offline=True, port=free_port(), log=lambda _: None)
    assert not any("pip install" in step for step in change.cached_steps)
    assert any("venv /opt/venv" in step for step in change.cached_steps)  # the layers above stay
    assert change.rebuild_seconds > 0 and change.serve_seconds > 0
    print(f"dependency change -> serving: {change.total_seconds:.1f}s")

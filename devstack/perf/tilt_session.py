"""The inner loop for real: `tilt up` (the pinned Tilt) on kind's nodes, on a copy
of the checkout, so that the edits a benchmark makes never touch the user's tree. Tilt's live
update syncs a change under agent/ into the running pods, where uvicorn --reload serves it; a
change to the dependencies makes Tilt rebuild the image, push it and replace the pods."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx

from devstack.cluster.cli import ClusterCli
from devstack.cluster.kind import port_forward
from devstack.cluster.tilt import tilt_env
from devstack.core.checkout import copy_checkout
from devstack.core.errors import DevstackError
from devstack.core.names import IMAGE, NAMESPACE
from devstack.core.net import free_port
from devstack.core.wait import wait_until


@dataclass(frozen=True)
class Served:
    version: str
    seconds: float


class TiltSession:
    def __init__(self, cli: ClusterCli, root: Path, build_env: Mapping[str, str]) -> None:
        self.cli = cli
        self.root = root
        self.build_env = dict(build_env)
        self.web_port = free_port()
        self._stack = contextlib.ExitStack()
        self.checkout = Path()
        self.log = Path()
        self.tilt: Popen[bytes] | None = None

    def __enter__(self) -> TiltSession:
        tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="vaia-tilt-"))
        self.checkout = copy_checkout(self.root, Path(tmp) / "checkout", self.cli.runner)
        self.log = Path(tmp) / "tilt.log"
        self.tilt = self.cli.runner.start(
            "tilt", "up", "--stream", "--file", str(self.checkout / "Tiltfile"),
            "--context", self.cli.context, "--port", str(self.web_port),
            env=tilt_env(self.cli.runner, self.build_env), cwd=self.checkout, log=self.log,
        )  # fmt: skip
        self._stack.callback(self._stop)
        try:
            self.wait_ready()
        except BaseException:
            self._stack.close()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _exited(self) -> bool:
        if self.tilt is not None and self.tilt.poll() is not None:
            tail = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise DevstackError(f"tilt up exited ({self.tilt.returncode})", tail)
        return False

    def _stop(self) -> None:
        if self.tilt is not None and self.tilt.poll() is None:
            self.tilt.terminate()
            try:
                self.tilt.wait(timeout=30)
            except Exception:
                self.tilt.kill()

    def wait_ready(self, timeout: float = 900) -> None:
        """The agent's resource Ready, as Tilt itself sees it (`tilt wait`), retried while Tilt
        starts its API server and loads the Tiltfile (until then it answers that there is no
        API server, or no such resource)."""
        deadline = time.monotonic() + timeout
        while True:
            self._exited()
            done = self.cli.runner.run(
                "tilt", "wait", "--for=condition=Ready", "uiresource/vaia-agent",
                "--port", str(self.web_port), "--timeout=30s", timeout=60, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            self._failed_update()
            if time.monotonic() > deadline:
                tail = self.log.read_text()[-3000:] if self.log.exists() else ""
                raise DevstackError(
                    f"tilt up did not bring vaia-agent up: {done.stderr.strip()}", tail
                )
            time.sleep(2)

    def _failed_update(self) -> None:
        """Tilt's own verdict: an update of the agent that failed (a build, a deploy) is not
        retried until a file changes, so waiting longer would only hide its error."""
        shown = self.cli.runner.run(
            "tilt", "get", "uiresource/vaia-agent", "--port", str(self.web_port), "-o", "json",
            timeout=60, check=False,
        )  # fmt: skip
        if shown.returncode != 0:
            return  # Tilt is still starting
        status = json.loads(shown.stdout).get("status", {})
        if status.get("updateStatus") == "error":
            history = status.get("buildHistory") or [{}]
            error = str(history[0].get("error") or "see Tilt's log").strip()
            tail = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise DevstackError(f"Tilt's update of vaia-agent failed: {error}", tail)

    @contextlib.contextmanager
    def agent(self) -> Iterator[str]:
        """The agent's URL through a port-forward of our own (Tilt's 8080 may be taken)."""
        with port_forward(self.cli, IMAGE, free_port()) as url:
            yield url

    def edit_and_wait(self, url: str, timeout: float = 120) -> Served:
        """A new version string in agent/__init__.py of the copy: Tilt syncs it, uvicorn
        reloads; the time until /health says the new version."""
        version = f"0.1.0+live.{uuid.uuid4().hex[:8]}"
        init = self.checkout / "agent" / "__init__.py"
        text = init.read_text()
        current = text.split('__version__ = "', 1)[1].split('"', 1)[0]
        started = time.perf_counter()
        init.write_text(text.replace(f'__version__ = "{current}"', f'__version__ = "{version}"'))
        _wait(lambda: _version(url) == version, timeout, f"version {version} served")
        return Served(version, time.perf_counter() - started)

    def dependency_change(self, timeout: float = 900) -> float:
        """A new line in requirements/runtime.lock (Tilt's fall_back_on): the seconds until a
        pod of the rebuilt image serves."""
        before = self.deployed_image()
        lock = self.checkout / "requirements" / "runtime.lock"
        started = time.perf_counter()
        lock.write_text(lock.read_text() + f"# dependency change {uuid.uuid4().hex[:8]}\n")
        _wait(lambda: self.deployed_image() != before, timeout, "Tilt to deploy a rebuilt image")
        self.cli.kubectl(
            "-n", NAMESPACE, "rollout", "status", f"deployment/{IMAGE}", f"--timeout={timeout:.0f}s"
        )
        with self.agent() as url:
            _wait(lambda: _version(url) is not None, 60, "the new pod to serve")
        return time.perf_counter() - started

    def deployed_image(self) -> str:
        return self.cli.kubectl(
            "-n", NAMESPACE, "get", f"deployment/{IMAGE}",
            "-o", "jsonpath={.spec.template.spec.containers[0].image}",
        ).stdout.strip()  # fmt: skip


def _version(url: str) -> str | None:
    try:
        response = httpx.get(url + "/health", timeout=2)
    except httpx.HTTPError:
        return None
    body: Any = response.json() if response.status_code == 200 else None
    return str(body["version"]) if body else None


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(
        check,
        timeout,
        lambda: DevstackError(f"timed out after {timeout:.0f} s waiting for {what}"),
        interval=0.05,
    )

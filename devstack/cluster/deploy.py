"""`invoke deploy` and `invoke rollback`: render an overlay with the image pinned, apply it, wait
for the rollout, and undo it when it fails. Every command goes through `Tools` (recordable)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.kind import ClusterCli
from devstack.cluster.render import OVERLAYS, render
from devstack.cluster.secrets import fill_secret, secret_values
from devstack.core.errors import CommandError, DevstackError
from devstack.core.names import CONTEXT, IMAGE, NAMESPACE
from devstack.core.runner import Result
from devstack.verify.manifests import pod_spec, workloads

# The context each overlay is meant for; prod names its own through $VAIA_PROD_CONTEXT.
EXPECTED_CONTEXTS = {"dev": CONTEXT, "ci": CONTEXT}
IMMUTABLE = re.compile(
    r"(:sha-[0-9a-f]{7}(-dirty)?|:\d+\.\d+\.\d+[0-9A-Za-z.+-]*|@sha256:[0-9a-f]{64})$"
)


class DeployError(DevstackError):
    """A deploy that must not go ahead, or a rollout that failed (and was rolled back)."""


def expected_context(overlay: str) -> str | None:
    if overlay == "prod":
        return os.environ.get("VAIA_PROD_CONTEXT")
    return EXPECTED_CONTEXTS.get(overlay)


def check_context(overlay: str, context: str, force: bool) -> None:
    expected = expected_context(overlay)
    if overlay not in OVERLAYS:
        raise DeployError(f"unknown overlay {overlay!r}: one of {', '.join(OVERLAYS)}")
    if force or context == expected:
        return
    hint = (
        "set VAIA_PROD_CONTEXT"
        if overlay == "prod" and expected is None
        else f"expected {expected!r}"
    )
    raise DeployError(
        f"refusing to deploy overlay {overlay} to context {context!r} ({hint}); --force overrides"
    )


def pin_image(objs: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """Point every container that runs the agent image at `image` (a tag or a digest)."""
    if not IMMUTABLE.search(image):
        raise DeployError(
            f"{image} is not immutable: deploy a sha-<git sha> tag, a release version or a digest"
        )
    for workload in workloads(objs):
        spec = pod_spec(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            base = container["image"].rsplit("/", 1)[-1].split("@")[0].split(":")[0]
            if base == IMAGE:
                container["image"] = image
    return objs


def manifests_for(
    root: Path, overlay: str, image: str, environ: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Exactly what `deploy` applies: the overlay rendered, the Secret filled from the
    environment (in memory), the agent image pinned; in kustomize's order (Namespace first)."""
    objs = render(root, overlay)
    fill_secret(objs, secret_values(os.environ if environ is None else environ))
    return pin_image(objs, image)


def deploy(
    cli: ClusterCli,
    root: Path,
    overlay: str,
    image: str,
    *,
    force: bool = False,
    timeout: str = "180s",
    log: Callable[[str], None] = print,
) -> None:
    check_context(overlay, cli.context, force)
    objs = manifests_for(root, overlay, image)  # the key travels on stdin only, never argv
    cli.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objs))
    log(f"applied overlay {overlay} with {image} to {cli.context}")
    status = _rollout(cli, "status", timeout)
    if status.returncode == 0:
        log("rollout complete")
        return
    log("rollout failed: undoing it")
    _rollout(cli, "undo", check=True)
    _rollout(cli, "status", timeout)
    raise DeployError(
        f"rollout of {image} failed and was rolled back: {status.stderr.strip()[-500:]}"
    )


def rollback(cli: ClusterCli, to_revision: int | None = None, timeout: str = "180s") -> None:
    _rollout(cli, "undo", extra=[f"--to-revision={to_revision}"] if to_revision else [], check=True)
    done = _rollout(cli, "status", timeout)
    if done.returncode != 0:
        raise CommandError(f"rollback did not complete: {done.stderr.strip()[-500:]}")


def _rollout(
    cli: ClusterCli,
    verb: str,
    timeout: str | None = None,
    extra: list[str] | None = None,
    check: bool = False,
) -> Result:
    """`kubectl rollout <verb> deployment/vaia-agent` in the namespace (status waits, bounded)."""
    args = ["-n", NAMESPACE, "rollout", verb, f"deployment/{IMAGE}", *(extra or [])]
    if timeout:
        args.append(f"--timeout={timeout}")
    return cli.kubectl(*args, check=check)

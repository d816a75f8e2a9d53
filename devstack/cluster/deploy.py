"""`invoke deploy` and `invoke rollback`: render an overlay with the image pinned and the Secret
filled in memory, apply it, wait for the rollout, and undo it when it fails. Every command goes
through the runner (recordable in tests)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.cli import ClusterCli
from devstack.cluster.render import OVERLAYS, pod_spec, render, workloads
from devstack.cluster.secrets import PULL_SECRET, RegistryAuth, fill_secret, secret_values
from devstack.core.errors import CommandError, DevstackError
from devstack.core.names import CONTEXT, IMAGE, NAMESPACE, SECRET
from devstack.core.runner import Result
from devstack.core.tokens import CHROMA_TOKEN_VARIABLE as TOKEN_VARIABLE
from devstack.core.tokens import new_token, valid_token

# The contexts each overlay is meant for (the first is the default); prod names its own through
# $VAIA_PROD_CONTEXT. dev and ci run on the local kind cluster.
EXPECTED_CONTEXTS = {"dev": (CONTEXT,), "ci": (CONTEXT,)}
IMMUTABLE = re.compile(
    r"(:sha-[0-9a-f]{7}(-dirty)?|:\d+\.\d+\.\d+[0-9A-Za-z.+-]*|@sha256:[0-9a-f]{64})$"
)


class DeployError(DevstackError):
    """A deploy that must not go ahead, or a rollout that failed (and was rolled back)."""


def expected_contexts(overlay: str) -> tuple[str, ...]:
    if overlay == "prod":
        prod = os.environ.get("VAIA_PROD_CONTEXT")
        return (prod,) if prod else ()
    return EXPECTED_CONTEXTS.get(overlay, ())


def expected_context(overlay: str) -> str | None:
    """The context an overlay goes to when none is named."""
    return next(iter(expected_contexts(overlay)), None)


def check_context(overlay: str, context: str, force: bool) -> None:
    expected = expected_contexts(overlay)
    if overlay not in OVERLAYS:
        raise DeployError(f"unknown overlay {overlay!r}: one of {', '.join(OVERLAYS)}")
    if force or context in expected:
        return
    hint = (
        "set VAIA_PROD_CONTEXT"
        if overlay == "prod" and not expected
        else f"expected {' or '.join(map(repr, expected))}"
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
            if _image_name(container["image"]) == IMAGE:
                container["image"] = image
    return objs


def _image_name(image: str) -> str:
    """`ghcr.io/x/vaia-agent:tag@sha256:...` -> `vaia-agent`."""
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def add_pull_secret(objs: list[dict[str, Any]], auth: RegistryAuth) -> list[dict[str, Any]]:
    """The registry's credentials as an image pull Secret, right after the Namespace (kubectl
    applies in stream order), named by every pod that runs the agent image."""
    namespace = next(o["metadata"]["name"] for o in objs if o["kind"] == "Namespace")
    first = next(i for i, o in enumerate(objs) if o["kind"] == "Namespace") + 1
    objs.insert(first, auth.secret(namespace))
    for workload in workloads(objs):
        spec = pod_spec(workload)
        images = [c["image"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
        if any(_image_name(image) == IMAGE for image in images):
            spec["imagePullSecrets"] = [{"name": PULL_SECRET}]
    return objs


def manifests_for(
    root: Path,
    overlay: str,
    image: str,
    environ: Mapping[str, str] | None = None,
    *,
    allow_offline: bool = False,
    pull_secret: bool = False,
) -> list[dict[str, Any]]:
    """Exactly what `deploy` applies: the overlay rendered, the Secret filled from the
    environment (in memory), the agent image pinned, an image pull Secret when asked for; in
    kustomize's order (Namespace first)."""
    environ = os.environ if environ is None else environ
    values = secret_values(environ)
    if overlay == "prod" and "GEMINI_API_KEY" not in values and not allow_offline:
        raise DeployError(
            "refusing to deploy prod without GEMINI_API_KEY: production would answer offline; "
            "set the key, or pass --allow-offline if that is what you want"
        )
    objs = pin_image(fill_secret(render(root, overlay), values), image)
    if pull_secret:
        add_pull_secret(objs, RegistryAuth.from_environ(image, environ))
    return objs


def chroma_token(cli: ClusterCli, environ: Mapping[str, str]) -> str:
    """Chroma's token: $CHROMA_AUTH_TOKEN, else the one the cluster's Secret holds (the running
    proxy and agents were started with it), else a new one."""
    given = environ.get(TOKEN_VARIABLE, "").strip()
    if given:
        return given  # checked with the other values by secret_values
    current = cli.kubectl(
        "-n",
        NAMESPACE,
        "get",
        "secret",
        SECRET,
        "--ignore-not-found",
        "-o",
        f"jsonpath={{.data.{TOKEN_VARIABLE}}}",
        check=False,
    )
    if current.returncode == 0 and current.stdout.strip():
        try:
            token = base64.b64decode(current.stdout.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            token = ""
        if valid_token(token):
            return token
    return new_token()


FIELD_MANAGER = "vaia-deploy"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def deploy(
    cli: ClusterCli,
    root: Path,
    overlay: str,
    image: str,
    *,
    force: bool = False,
    timeout: str = "180s",
    allow_offline: bool = False,
    pull_secret: bool = False,
    log: Callable[[str], None] = print,
) -> None:
    check_context(overlay, cli.context, force)
    # Secrets travel on stdin only, never on a command line.
    environ = {**os.environ, TOKEN_VARIABLE: chroma_token(cli, os.environ)}
    objs = manifests_for(
        root, overlay, image, environ, allow_offline=allow_offline, pull_secret=pull_secret
    )
    previous = current_revision(cli)
    apply_server_side(cli, objs)
    log(f"applied overlay {overlay} with {image} to {cli.context}")
    status = _rollout(cli, "status", timeout)
    if status.returncode == 0:
        log("rollout complete")
        return
    reason = status.stderr.strip()[-500:]
    if previous is None:
        raise DeployError(
            f"rollout of {image} failed, and this was the first deploy of deployment/{IMAGE} to "
            f"{cli.context}: there is no earlier revision to go back to ({reason})"
        )
    log(f"rollout failed: undoing it (back to revision {previous})")
    _rollout(cli, "undo", check=True)
    _rollout(cli, "status", timeout)
    raise DeployError(
        f"rollout of {image} failed and was rolled back to revision {previous}: {reason}"
    )


def apply_server_side(cli: ClusterCli, objs: list[dict[str, Any]]) -> None:
    """Server-side apply under a field manager of our own: the API server keeps which fields we
    own in managedFields (names only), instead of kubectl's client-side apply writing the whole
    object, Secret values included, into the last-applied-configuration annotation, which
    `kubectl describe` and anyone who can read the object then see. Conflicts are forced: the
    deploy is the owner of what it applies (a field an operator changed by hand is taken back).
    An annotation left on a Secret by an earlier client-side apply is removed."""
    cli.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objs),
    )
    for obj in objs:
        if obj["kind"] == "Secret" and LAST_APPLIED in secret_annotations(cli, obj):
            cli.kubectl(
                "-n",
                obj["metadata"].get("namespace", NAMESPACE),
                "annotate",
                "secret",
                obj["metadata"]["name"],
                f"{LAST_APPLIED}-",
            )


def secret_annotations(cli: ClusterCli, obj: dict[str, Any]) -> dict[str, str]:
    found = cli.kubectl(
        "-n",
        obj["metadata"].get("namespace", NAMESPACE),
        "get",
        "secret",
        obj["metadata"]["name"],
        "-o",
        "jsonpath={.metadata.annotations}",
        "--ignore-not-found",
        check=False,
    )
    text = found.stdout.strip()
    return json.loads(text) if found.returncode == 0 and text else {}


def current_revision(cli: ClusterCli) -> int | None:
    """The agent Deployment's revision before this deploy, or None when there is none yet."""
    found = cli.kubectl(
        "-n",
        NAMESPACE,
        "get",
        f"deployment/{IMAGE}",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        "--ignore-not-found",
        check=False,
    )
    text = found.stdout.strip()
    return int(text) if found.returncode == 0 and text.isdigit() else None


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

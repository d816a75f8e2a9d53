"""`invoke verify --server`: every overlay dry-run against a real API server, on whatever cluster
the user names (kind's, or any context).

What is sent is exactly what `invoke deploy` applies (the overlay rendered, the image pinned, the
Secret filled with placeholder values): `kubectl apply --server-side --dry-run=server
--validate=strict`, so the server's own schema, defaulting and admission (Pod Security among
them) decide, and nothing is stored. A dry run cannot create the Namespace that the rest needs,
so the namespaced objects go into a temporary namespace made for the check with the overlay's
own Namespace labels (its Pod Security level), deleted afterwards: the cluster's `vaia` namespace,
if there is one, is never touched.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.cli import ClusterCli
from devstack.cluster.deploy import manifests_for
from devstack.cluster.render import Obj
from devstack.core.names import NAMESPACE

PLACEHOLDER_IMAGE = "localhost:5001/vaia-agent:sha-0000000"
PLACEHOLDER_SECRETS = {"GEMINI_API_KEY": "verify-placeholder", "CHROMA_HOST": "chromadb"}
FIELD_MANAGER = "vaia-verify"


def in_namespace(objs: list[Obj], namespace: str) -> tuple[Obj, list[Obj]]:
    """The overlay's Namespace renamed to `namespace` (its labels kept), and every namespaced
    object moved into it."""
    [original] = [o for o in objs if o["kind"] == "Namespace"]
    renamed = {**original, "metadata": {**original["metadata"], "name": namespace}}
    moved = []
    for obj in objs:
        if obj["kind"] == "Namespace":
            continue
        copy: dict[str, Any] = {**obj, "metadata": {**obj["metadata"]}}
        if copy["metadata"].get("namespace") == NAMESPACE:
            copy["metadata"]["namespace"] = namespace
        moved.append(copy)
    return renamed, moved


def dry_run_problems(cli: ClusterCli, root: Path, overlay: str) -> tuple[list[str], list[str]]:
    """What the API server refuses (errors), and what it warns about (Pod Security's `would
    violate` among them), for one overlay."""
    objs = manifests_for(
        root, overlay, PLACEHOLDER_IMAGE, environ=PLACEHOLDER_SECRETS, allow_offline=True
    )
    namespace = f"vaia-verify-{secrets.token_hex(3)}"
    renamed, moved = in_namespace(objs, namespace)
    cli.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(renamed))
    try:
        done = cli.kubectl(
            "apply",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(moved),
            check=False,
        )
    finally:
        cli.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    warnings = [line.removeprefix("Warning: ") for line in lines if line.startswith("Warning:")]
    errors = [line for line in lines if not line.startswith("Warning:")]
    if done.returncode != 0 and not errors:
        errors = [f"kubectl apply --dry-run=server failed (exit {done.returncode})"]
    return [e.replace(namespace, NAMESPACE) for e in errors], [
        w.replace(namespace, NAMESPACE) for w in warnings
    ]

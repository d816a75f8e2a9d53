"""The agent's Secret (`vaia-agent-secrets`), filled from the environment in memory.

The Secret is committed with no value in it (k8s/base/agent-secret.yaml). `invoke deploy` fills
it from $GEMINI_API_KEY just before `kubectl apply` reads the stream on stdin, and the Tiltfile
does the same in Starlark: the key is never an argument, never printed, never in a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devstack.core.errors import DevstackError
from devstack.core.names import SECRET

SECRET_VARIABLES = ("GEMINI_API_KEY",)


class SecretError(DevstackError):
    """A secret value from the environment cannot go into the Secret as it is."""


def secret_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The Secret's keys from the environment; unset or blank ones stay as committed."""
    values = {}
    for name in SECRET_VARIABLES:
        value = environ.get(name, "").strip()
        if "\n" in value or "\r" in value:
            raise SecretError(f"{name} must be a single line")
        if value:
            values[name] = value
    return values


def fill_secret(objs: list[dict[str, Any]], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Put `values` into the Secret's stringData (in place); the Secret must be in `objs`."""
    secret = next(
        (o for o in objs if o.get("kind") == "Secret" and o["metadata"]["name"] == SECRET),
        None,
    )
    if secret is None:
        raise SecretError(f"the rendered manifests have no Secret {SECRET}")
    secret.setdefault("stringData", {}).update(values)
    return objs

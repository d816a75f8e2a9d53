"""The agent's Secret (`vaia-agent-secrets`) and the image pull Secret, filled from the
environment in memory.

The Secret is committed with no secret in it (k8s/base/agent-secret.yaml: CHROMA_HOST is the
in-cluster `chromadb`, GEMINI_API_KEY and CHROMA_AUTH_TOKEN are empty). `invoke deploy` fills it
from $GEMINI_API_KEY and $CHROMA_HOST (the values CI verified, as the seed's contract says) and
Chroma's token (deploy.py: the cluster's own, else $CHROMA_AUTH_TOKEN, else a new one) just before
`kubectl apply` reads the stream on stdin; the Tiltfile fills the key and the token the same way in
Starlark. A value is never an argument, never printed, never in a file.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devstack.core.errors import DevstackError
from devstack.core.names import IMAGE, SECRET
from devstack.core.tokens import CHROMA_TOKEN_VARIABLE as TOKEN_VARIABLE
from devstack.core.tokens import valid_token

SECRET_VARIABLES = ("GEMINI_API_KEY", "CHROMA_HOST", TOKEN_VARIABLE)
PULL_SECRET = f"{IMAGE}-pull"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class SecretError(DevstackError):
    """A secret value from the environment cannot go into the cluster as it is."""


def _check_chroma_host(value: str) -> None:
    try:
        loopback = ipaddress.ip_address(value).is_loopback
    except ValueError:
        if not _HOSTNAME.match(value):
            raise SecretError(
                f"CHROMA_HOST={value!r} is not a host name or an IP address"
            ) from None
        loopback = value.lower() == "localhost"
    if loopback:
        raise SecretError(
            f"CHROMA_HOST={value} is this machine's loopback; in a pod it is the pod itself. "
            "Unset it to use the in-cluster `chromadb`, or name a host the cluster reaches"
        )


def secret_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The Secret's keys from the environment; unset or blank ones stay as committed."""
    values = {}
    for name in SECRET_VARIABLES:
        value = environ.get(name, "").strip()
        if "\n" in value or "\r" in value:
            raise SecretError(f"{name} must be a single line")
        if value:
            values[name] = value
    if "CHROMA_HOST" in values:
        _check_chroma_host(values["CHROMA_HOST"])
    if TOKEN_VARIABLE in values and not valid_token(values[TOKEN_VARIABLE]):
        raise SecretError(f"{TOKEN_VARIABLE} must be 32 or more of A-Z a-z 0-9 _ -")
    return values


def find_secret(objs: list[dict[str, Any]], name: str = SECRET) -> dict[str, Any]:
    secret = next(
        (o for o in objs if o.get("kind") == "Secret" and o["metadata"]["name"] == name), None
    )
    if secret is None:
        raise SecretError(f"the rendered manifests have no Secret {name}")
    return secret


def fill_secret(objs: list[dict[str, Any]], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Put `values` into the Secret's stringData (in place); the Secret must be in `objs`."""
    find_secret(objs).setdefault("stringData", {}).update(values)
    return objs


@dataclass(frozen=True)
class RegistryAuth:
    server: str
    username: str
    password: str

    @classmethod
    def from_environ(cls, image: str, environ: Mapping[str, str]) -> RegistryAuth:
        """$REGISTRY_USERNAME and $REGISTRY_PASSWORD, for the registry `image` comes from."""
        username = environ.get("REGISTRY_USERNAME", "").strip()
        password = environ.get("REGISTRY_PASSWORD", "").strip()
        if not username or not password:
            raise SecretError("--pull-secret needs $REGISTRY_USERNAME and $REGISTRY_PASSWORD")
        server = image.split("/", 1)[0]
        if "/" not in image or not ("." in server or ":" in server or server == "localhost"):
            raise SecretError(f"{image} names no registry to authenticate to")
        return cls(server, username, password)

    def secret(self, namespace: str) -> dict[str, Any]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        config = {"auths": {self.server: {"auth": token}}}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": PULL_SECRET, "namespace": namespace},
            "stringData": {".dockerconfigjson": json.dumps(config)},
        }

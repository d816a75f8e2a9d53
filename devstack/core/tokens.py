"""The token Chroma's auth proxy asks for (k8s/base/chromadb-auth/): one rule for what is valid
(the proxy's start.sh and the agent's settings check the same), one way to make one."""

from __future__ import annotations

import re
import secrets

CHROMA_TOKEN_VARIABLE = "CHROMA_AUTH_TOKEN"  # noqa: S105 - a name, not a value
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,}")


def valid_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


def new_token() -> str:
    """32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)

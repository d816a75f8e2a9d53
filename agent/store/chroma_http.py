"""chromadb's HTTP client with a deadline on every request, connecting included.

chromadb (1.x) builds its httpx clients with `timeout=None` and sends requests from its own
constructor (the user identity, then the tenant check through a second, admin, client). A
server that accepts connections but never answers (paused, overloaded, a half-open network)
then holds the calling thread for ever, and no setting of chromadb changes that. This subclass
of chromadb's public `Client` gives each of its httpx sessions a timeout before the first
request is sent, and closes them when the client is closed.
"""

from __future__ import annotations

from typing import Any

import httpx
from chromadb.api.client import Client
from chromadb.auth import UserIdentity
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT
from chromadb.config import Settings as ChromaSettings

__all__ = ["BoundedHttpClient"]


def _session(api: Any) -> httpx.Client:
    session = getattr(api, "_session", None)
    if not isinstance(session, httpx.Client):
        # Fail loudly rather than run unbounded if a chromadb upgrade moves the session.
        raise RuntimeError("chromadb's HTTP client has no httpx session to put a deadline on")
    return session


class BoundedHttpClient(Client):
    def __init__(self, host: str, port: int, timeout: float, settings: ChromaSettings) -> None:
        self._deadline = httpx.Timeout(timeout)
        # What chromadb.HttpClient() sets, minus its hard-wired (unbounded) implementation.
        settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
        settings.chroma_server_host = host
        settings.chroma_server_http_port = port
        settings.chroma_server_ssl_enabled = False
        super().__init__(tenant=DEFAULT_TENANT, database=DEFAULT_DATABASE, settings=settings)

    def get_user_identity(self) -> UserIdentity:
        # The constructor's first request: the main session exists by now.
        _session(self._server).timeout = self._deadline
        identity: UserIdentity = super().get_user_identity()
        return identity

    def _validate_tenant_database(self, tenant: str, database: str) -> None:
        # The admin client has a session of its own, created just before this check.
        _session(getattr(self._admin_client, "_server", None)).timeout = self._deadline
        super()._validate_tenant_database(tenant=tenant, database=database)

    def close(self) -> None:
        super().close()
        # chromadb releases its systems but leaves their connection pools open.
        for api in (self._server, getattr(self._admin_client, "_server", None)):
            if api is not None:
                _session(api).close()

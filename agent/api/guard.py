"""What every /v1/* request must pass (pure ASGI): bearer auth (AGENT_API_KEYS), with failed
attempts throttled per client IP, then the rate limit (RATE_LIMIT_PER_MINUTE), whose
X-RateLimit-* headers go on the answer.

Here rather than as a FastAPI dependency: a dependency cost FastAPI a resolution of its own on
every request (a tenth of a cache hit's CPU, docs/benchmarks.md, issue #25), and a request is
refused before its body is parsed. With neither auth nor a rate limit set, a request passes
through at once.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.deps import ApiError
from agent.api.middleware import json_response
from agent.wiring import Components

V1 = "/v1/"


class V1Guard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(V1):
            await self.app(scope, receive, send)
            return
        c: Components = scope["app"].state.components
        if not c.settings.auth_enabled and c.settings.rate_limit_per_minute <= 0:
            await self.app(scope, receive, send)
            return
        try:
            if c.settings.auth_enabled:
                await _authenticate(scope, c)
            headers = await _rate_limit(scope, c)
        except ApiError as refused:
            await _refuse(scope, send, refused)
            return
        if not headers:
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:  # ASGI header names are lower-case bytes
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _matches_any(token: str, keys: list[bytes]) -> bool:
    presented = token.encode()
    matched = False
    for key in keys:  # compare with every key, always: no early exit to time
        matched |= hmac.compare_digest(presented, key)
    return matched


async def _authenticate(scope: Scope, c: Components) -> None:
    """Bearer auth, with failed attempts throttled per client IP. The throttle is checked
    before the key, so a throttled guesser learns nothing, not even from a right guess."""
    limit = c.settings.auth_failures_per_minute
    failures = f"authfail:ip:{client_ip(scope)}"
    if limit:
        seen = await c.state.rate_peek(failures, limit)
        if not seen.allowed:
            c.metrics.rate_limited.inc()
            raise ApiError(
                429,
                "too_many_auth_failures",
                f"too many failed authentication attempts from this client (limit "
                f"AUTH_FAILURES_PER_MINUTE={limit}); retry after the Retry-After delay",
                headers={"Retry-After": str(seen.reset_seconds)},
            )
    scheme, _, token = _header(scope, b"authorization").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        failure = ApiError(
            401,
            "unauthorized",
            "missing bearer token: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    elif not _matches_any(token, c.api_keys):
        failure = ApiError(
            401,
            "unauthorized",
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    else:
        scope.setdefault("state", {})["api_key_digest"] = hashlib.sha256(
            token.encode()
        ).hexdigest()[:16]
        return
    if limit:
        await c.state.rate_limit(failures, limit)
    raise failure


async def _rate_limit(scope: Scope, c: Components) -> list[tuple[bytes, bytes]]:
    """Count the request against its client's limit (its key's digest when auth is on, else its
    IP); the X-RateLimit-* headers of the answer, or ApiError 429."""
    limit = c.settings.rate_limit_per_minute
    if limit <= 0:
        return []
    digest = scope.get("state", {}).get("api_key_digest")
    decision = await c.state.rate_limit(f"key:{digest}" if digest else f"ip:{client_ip(scope)}")
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        c.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {limit} requests per minute exceeded",
            headers={**headers, "Retry-After": str(decision.reset_seconds)},
        )
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


async def _refuse(scope: Scope, send: Send, refused: ApiError) -> None:
    """The error body every error has (agent/app.py), with the refusal's headers."""
    body = {
        "detail": str(refused.detail),
        "error": refused.error,
        "request_id": scope.get("state", {}).get("request_id"),
    }
    for message in json_response(refused.status_code, body, refused.headers):
        await send(message)

"""Request dependencies: the component container, bearer auth, and the rate limit."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Depends, HTTPException, Request, Response, status

from agent.wiring import Components


def components_of(request: Request) -> Components:
    """Every route reaches the components this way: a plain attribute lookup, not a FastAPI
    dependency (each dependency costs a resolution per request, and a plain `def` one a thread
    hop)."""
    container: Components = request.app.state.components
    return container


def _matches_any(token: str, keys: list[bytes]) -> bool:
    presented = token.encode()
    matched = False
    for key in keys:  # compare with every key, always: no early exit to time
        matched |= hmac.compare_digest(presented, key)
    return matched


def client_identity(request: Request) -> str:
    """Who the caller is, for the rate limit: a digest of the key if auth is on, else the IP."""
    token = getattr(request.state, "api_key_digest", None)
    if token:
        return f"key:{token}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def guard(request: Request, response: Response) -> None:
    """Everything /v1/* needs, as one dependency (each dependency costs FastAPI a resolution on
    every request): bearer auth, then the rate limit."""
    c = components_of(request)
    _authenticate(request, c)
    await _rate_limit(request, response, c)


def _authenticate(request: Request, c: Components) -> None:
    if not c.settings.auth_enabled:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches_any(token.strip(), c.api_keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.api_key_digest = hashlib.sha256(token.strip().encode()).hexdigest()[:16]


async def _rate_limit(request: Request, response: Response, c: Components) -> None:
    limit = c.settings.rate_limit_per_minute
    if limit <= 0:
        return
    decision = await c.state.rate_limit(client_identity(request))
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        c.metrics.rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit of {limit} requests per minute exceeded",
            headers={**headers, "Retry-After": str(decision.reset_seconds)},
        )
    response.headers.update(headers)


V1Guard = [Depends(guard)]

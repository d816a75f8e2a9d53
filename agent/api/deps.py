"""Request dependencies: the component container, bearer auth, and the rate limit."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Depends, Request, Response, status
from starlette.exceptions import HTTPException

from agent.wiring import Components


class ApiError(HTTPException):
    """An HTTPException with the machine-readable `error` code of the error body."""

    def __init__(
        self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail=detail, headers=headers)
        self.error = error


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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def client_identity(request: Request) -> str:
    """Who the caller is, for the rate limit: a digest of the key if auth is on, else the IP."""
    token = getattr(request.state, "api_key_digest", None)
    if token:
        return f"key:{token}"
    return f"ip:{client_ip(request)}"


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def guard(request: Request, response: Response) -> None:
    """Everything /v1/* needs, as one dependency (each dependency costs FastAPI a resolution on
    every request): bearer auth, then the rate limit."""
    c = components_of(request)
    if c.settings.auth_enabled:
        await _authenticate(request, c)
    await _rate_limit(request, response, c)


async def _authenticate(request: Request, c: Components) -> None:
    """Bearer auth, with failed attempts throttled per client IP. The throttle is checked
    before the key, so a throttled guesser learns nothing, not even from a right guess."""
    limit = c.settings.auth_failures_per_minute
    failures = f"authfail:ip:{client_ip(request)}"
    if limit:
        seen = await c.state.rate_peek(failures, limit)
        if not seen.allowed:
            c.metrics.rate_limited.inc()
            raise ApiError(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too_many_auth_failures",
                f"too many failed authentication attempts from this client (limit "
                f"AUTH_FAILURES_PER_MINUTE={limit}); retry after the Retry-After delay",
                headers={"Retry-After": str(seen.reset_seconds)},
            )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        failure = ApiError(
            status.HTTP_401_UNAUTHORIZED,
            "unauthorized",
            "missing bearer token: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    elif not _matches_any(token, c.api_keys):
        failure = ApiError(
            status.HTTP_401_UNAUTHORIZED,
            "unauthorized",
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    else:
        request.state.api_key_digest = hashlib.sha256(token.encode()).hexdigest()[:16]
        return
    if limit:
        await c.state.rate_limit(failures, limit)
    raise failure


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
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate_limited",
            f"rate limit of {limit} requests per minute exceeded",
            headers={**headers, "Retry-After": str(decision.reset_seconds)},
        )
    response.headers.update(headers)


V1Guard = [Depends(guard)]

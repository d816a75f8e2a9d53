"""What the routes share: the component container, and the error with an error code.
(Auth and the rate limit are agent/api/guard.py's.)"""

from __future__ import annotations

from fastapi import Request
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

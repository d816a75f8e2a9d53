"""Admission control (pure ASGI, on the inference routes): at most MAX_INFLIGHT_REQUESTS
requests in flight in this process; past that, an immediate 503 with `Retry-After`.

Without it an overload is queued, never shed: every request is taken, each waits its turn for the
one event loop, and the waits grow with the queue (7 s at 600 clients, docs/benchmarks.md) for
everyone, those that will time out included. A refusal costs a few microseconds and tells the
client (or the load balancer) to go elsewhere or come back. A streamed answer holds its place
until its last event. The operations endpoints are never counted, so probes and scrapers get
through. As Ray Serve answers 503 past `max_queued_requests`, and TGI 429 past
`--max-concurrent-requests`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.metrics import Metrics

# A place frees when a request ends: about a Gemini call's time, a second or so.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class _Refused:
    """What the router would have put in the scope: the route's template, for the access log
    and the HTTP metrics of a request refused before routing."""

    path: str


class AdmissionControl:
    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics, paths: frozenset[str]) -> None:
        self.app = app
        self.limit = limit  # 0: no limit
        self.paths = paths
        self.in_flight = 0
        # Read when scraped: counting it on a gauge took two of its locks a request.
        metrics.inflight_requests.set_function(lambda: self.in_flight)
        self._shed = {path: metrics.requests_shed.labels(path) for path in paths}
        self._routes = {path: _Refused(path) for path in paths}
        self._detail = (
            f"this process is answering its limit of {limit} requests "
            f"(MAX_INFLIGHT_REQUESTS); retry after the Retry-After delay"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.limit and self.in_flight >= self.limit:
            self._shed[scope["path"]].inc()
            scope["route"] = self._routes[scope["path"]]
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        async def send_releasing(message: Message) -> None:
            # Freed before the last of the answer goes out: a keep-alive client asks again as
            # soon as it has it, and must find its place free (after the route returned was
            # too late: as many clients as the limit were refused now and then).
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing)
        finally:
            release()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "detail": self._detail,
                "error": "overloaded",
                "request_id": scope.get("state", {}).get("request_id"),
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""One pure-ASGI middleware for what every request needs: a request id (taken from a sane
X-Request-ID or made), header and body size limits, the access log line, and the HTTP metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.cancellation import CLIENT_GONE
from agent.logs import request_id_var
from agent.metrics import Metrics

access_log = logging.getLogger("agent.access")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
# Metric labels must stay bounded: any other method (WebDAV's, invented ones) is "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _BodyTooLargeError(Exception):
    pass


def json_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> tuple[Message, Message]:
    """An error answer from pure-ASGI code, its JSON written as Starlette's JSONResponse writes
    the other error bodies (agent/app.py): the start message (with `headers`) and the body."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, max_header_bytes: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        # The metric series of each (method, route, status): labels() validates and locks on
        # every call, a cost per request for the same few series. Bounded like the labels.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        header_bytes = 0
        incoming, declared = b"", b""
        for name, value in scope["headers"]:  # ASGI header names are lower-case bytes
            header_bytes += len(name) + len(value)
            if name == b"x-request-id":
                incoming = value
            elif name == b"content-length":
                declared = value
        # Before anything reads them (auth would hash a 1 MB key): refuse oversized headers.
        if header_bytes > self.max_header_bytes:
            await self._refuse_headers(scope, send, header_bytes, started)
            return
        # 32 random hex digits, like uuid4().hex, at a third of its cost.
        request_id = (
            incoming.decode("latin-1")
            if incoming and _REQUEST_ID.match(incoming)
            else os.urandom(16).hex()
        )
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False
        too_large = False
        too_large_replies: list[tuple[Message, Message]] = []

        def too_large_reply() -> tuple[Message, Message]:
            if not too_large_replies:  # built when needed: almost never
                too_large_replies.append(
                    json_response(
                        413,
                        {
                            "detail": f"request body exceeds MAX_BODY_BYTES={self.max_body_bytes}",
                            "error": "body_too_large",
                            "request_id": request_id,
                        },
                    )
                )
            return too_large_replies[0]

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if too_large:
                # The app answered a body it could not finish reading (a parse error, or
                # nothing): the real reason is the size, so the client gets the 413.
                if response_started:
                    return
                message = too_large_reply()[0]
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                await send(message)
                if too_large:
                    await send(too_large_reply()[1])
                return
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        try:
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                too_large = True
                raise _BodyTooLargeError
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLargeError:
            if not response_started:
                await send_with_id(too_large_reply()[0])
        finally:
            elapsed = time.perf_counter() - started
            if not response_started and scope["state"].get(CLIENT_GONE):
                status = 499  # the client closed the connection first (nginx's code)
            route = _route_template(scope)
            method = scope["method"]
            label = method if method in KNOWN_METHODS else "other"
            series = self._series.get((label, route, str(status)))
            if series is None:
                series = self._series[label, route, str(status)] = (
                    self.metrics.http_requests.labels(label, route, str(status)),
                    self.metrics.http_latency.labels(label, route, str(status)),
                )
            series[0].inc()
            series[1].observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
            request_id_var.reset(token)

    async def _refuse_headers(
        self, scope: Scope, send: Send, header_bytes: int, started: float
    ) -> None:
        request_id = uuid.uuid4().hex
        start, body = json_response(
            431,
            {
                "detail": f"request headers are {header_bytes} bytes; the limit is "
                f"MAX_HEADER_BYTES={self.max_header_bytes}",
                "error": "headers_too_large",
                "request_id": request_id,
            },
        )
        start["headers"].append((b"x-request-id", request_id.encode()))
        await send(start)
        await send(body)
        label = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        self.metrics.http_requests.labels(label, "unmatched", "431").inc()
        self.metrics.http_latency.labels(label, "unmatched", "431").observe(
            time.perf_counter() - started
        )
        access_log.info(
            "request headers too large",
            extra={"path": scope["path"], "status": 431, "header_bytes": header_bytes},
        )


def _route_template(scope: Scope) -> str:
    """The matched route's path template, so metric labels stay bounded (no raw paths)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"

"""A client that goes away cancels the work of its request (pure ASGI, on the inference routes).

Left alone, a request whose client hung up runs to its end: the Gemini call in flight, every
tool round after it, and the answer is cached, for no one. Here, once the request has run for
WATCH_AFTER_SECONDS with its body read, a watcher reads the client's side of the connection; the
server reports the hang-up as `http.disconnect` (uvicorn does as soon as the socket closes, and
at once to a watcher that starts after it), and the request's task is cancelled wherever it
waits: the Gemini call's connection is closed, nothing after it runs (the cache write included)
and the request is counted in `vaia_requests_cancelled_total`. As vLLM's server does
(`with_cancellation`).

The request runs in its own task, and a watcher exists only for a request still running after
WATCH_AFTER_SECONDS: a cache hit or a refusal is over long before, and costs no task and no read
of the connection. The body is read by the route (through this middleware, which notes its end);
only then does the watcher read: a single reader at a time consumes the connection's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.metrics import Metrics

# Set in the request's scope state when its client went away before the response was complete,
# so that the access log and the HTTP metrics record 499 (nginx's "client closed request").
CLIENT_GONE = "client_gone"
# A hang-up is noticed at most this late; requests done sooner are never watched.
WATCH_AFTER_SECONDS = 0.05


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, metrics: Metrics, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths
        self._cancelled = {path: metrics.requests_cancelled.labels(path) for path in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        request = _Request(receive)
        request.arm()
        try:
            await self.app(scope, request.receive, request.send_through(send))
        except asyncio.CancelledError:
            if not request.hung_up:
                raise
            if request.task.uncancel() > 0:
                raise  # cancelled for another reason too (the server shutting down)
            scope.setdefault("state", {})[CLIENT_GONE] = True
            self._cancelled[scope["path"]].inc()
        finally:
            request.disarm()


class _Request:
    """One request's watch: a timer, then (if the request still runs) a task that reads the
    client's side and cancels the request's task when the client goes."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        task = asyncio.current_task()
        assert task is not None, "a request runs in a task"
        self.task: asyncio.Task[Any] = task
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._body_read = False
        self._complete = False
        self.hung_up = False

    def arm(self) -> None:
        self._timer = self._loop.call_later(WATCH_AFTER_SECONDS, self._watch)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._body_read = True
        return message

    def send_through(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._complete = True

        return sending

    def _watch(self) -> None:
        self._timer = None
        if self._complete:
            return
        if not self._body_read:  # the route still reads the body: it sees a hang-up itself
            self.arm()
            return
        self._watcher = self._loop.create_task(self._read_client())

    async def _read_client(self) -> None:
        with contextlib.suppress(Exception):  # a read that fails is no hang-up
            while (await self._receive())["type"] != "http.disconnect":
                pass
            if not self._complete:
                self.hung_up = True
                self.task.cancel()

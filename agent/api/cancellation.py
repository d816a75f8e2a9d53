"""A client that goes away cancels the work of its request (pure ASGI, on the inference routes).

Left alone, a request whose client hung up runs to its end: the Gemini call in flight, every
tool round after it, and the answer is cached, for no one. Here the route runs in a task of its
own while this middleware reads the client's side of the connection; the server reports the
hang-up as `http.disconnect` (uvicorn does as soon as the socket closes), and the task is
cancelled wherever it waits: the Gemini call's connection is closed, nothing after it runs (the
cache write included) and the request is counted in `vaia_requests_cancelled_total`. As vLLM's
server does (`with_cancellation`).

The route reads what this middleware has read (its body, then the disconnect), so that a single
reader consumes the connection's messages; a streaming response, which watches for the
disconnect itself, sees it too.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.metrics import Metrics

# Set in the request's scope state when its client went away before the response was complete,
# so that the access log and the HTTP metrics record 499 (nginx's "client closed request").
CLIENT_GONE = "client_gone"


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, metrics: Metrics, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths
        self._cancelled = {path: metrics.requests_cancelled.labels(path) for path in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        messages: asyncio.Queue[Message] = asyncio.Queue()
        complete = False

        async def read_client() -> None:
            while True:
                message = await receive()
                messages.put_nowait(message)
                if message["type"] == "http.disconnect":
                    return

        async def send_until_complete(message: Message) -> None:
            nonlocal complete
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True

        handler = asyncio.ensure_future(self.app(scope, messages.get, send_until_complete))
        client = asyncio.ensure_future(read_client())
        try:
            await asyncio.wait({handler, client}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and not complete:
                client.result()  # a failure to read the body (too large) is the request's
                handler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handler
                scope.setdefault("state", {})[CLIENT_GONE] = True
                self._cancelled[scope["path"]].inc()
                return
            await handler
        finally:
            handler.cancel()
            client.cancel()
            if client.done() and not client.cancelled():
                client.exception()  # retrieved: a read that failed after the answer is no news

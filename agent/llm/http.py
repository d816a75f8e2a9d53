"""HTTP/1.1 to one origin (Gemini's API), lean: keep-alive connections on asyncio's own
transports, each answer parsed by httptools (the C parser uvicorn serves the agent with), each
request written in one write.

httpx cost the agent 0.8-1.0 ms of CPU a call against the stand-in, this about 0.15 ms
(docs/benchmarks.md, issue #25), and a Gemini-backed answer makes two calls: httpx's client
layer, httpcore's pool (which asks every idle connection it considers whether the server closed
it, a socket probe each), h11's parser in Python, and two writes a request. What this client
leaves out the agent never used: redirects (httpx follows none by default), cookies, proxies
(httpx takes none from the environment for a client given its own transport, as the agent's
was), HTTP/2.

- Connections: at most `max_connections`, the idle ones reused last in, first out, closed once
  idle for `keepalive_s`; one the server closed is known at once (asyncio says so), so nothing
  probes a socket before reusing it. A request on a reused connection that the server closed
  before answering anything goes again once, on a new connection (the server closed an idle
  connection as it was taken: it processed nothing).
- Answers: Content-Length or chunked (httptools decodes the chunks), decompressed when the
  server compressed them, in the encodings httpx asks for (agent/llm/encodings.py).
- Failures: ConnectError (no connection), RemoteProtocolError (the connection ended before the
  answer did, or the answer is not HTTP). A call given up (cancelled, or its answer left unread)
  closes its connection: the server sees its client go.
- Deadlines are the caller's (agent/llm/gemini.py bounds each call as a whole); connecting has
  one of its own too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from agent.llm.encodings import ACCEPT_ENCODING, UnsupportedEncodingError, decoder


class TransportError(Exception):
    """The request got no complete answer."""


class ConnectError(TransportError):
    """No connection to the server."""


class RemoteProtocolError(TransportError):
    """The connection ended before the answer did, or what came is not HTTP."""


class _Exchange:
    """One request's answer as it arrives: its status and headers, then its body's pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.reason = ""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.delimited = False  # by Content-Length or chunks, not by the connection's end
        self.anything = False  # a byte of the answer came
        self.complete = False
        self.error: BaseException | None = None
        self._pieces: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self._pieces.append(data)
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.complete or self.error is not None:
            return
        self.error = error
        if not self.headers_done.done():
            self.headers_done.set_exception(error)
            self.headers_done.exception()  # retrieved: whoever awaits it gets it raised
        self._wake()

    async def piece(self) -> bytes | None:
        """The next piece of the body, waiting for it; None at its end."""
        while True:
            if self._pieces:
                return self._pieces.popleft()
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its answer parsed as it comes."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.answered = 0  # answers completed on it: above 0, it is a reused connection
        self.idle_since = 0.0

    def send(self, request: bytes) -> _Exchange:
        assert self.transport is not None and self.exchange is None
        self.exchange = _Exchange(self._client.loop)
        self.transport.write(request)
        return self.exchange

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._lost(None)

    # --- asyncio ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport: TCP or TLS

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing was asked: not an answer to anything
            self.close()
            return
        exchange.anything = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            exchange.fail(RemoteProtocolError(f"the server's answer is not HTTP/1.1: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            if exchange.headers_done.done() and not exchange.delimited:
                exchange.finish()  # an answer that ends with its connection
            else:
                reason = f": {exc}" if exc else ""
                exchange.fail(RemoteProtocolError(f"the server closed the connection{reason}"))
        self._client._closed(self)

    # --- httptools ---------------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        assert self.exchange is not None
        self.exchange.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.exchange is not None
        self.exchange.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.status = self._parser.get_status_code()
        names = {name.lower() for name, _ in exchange.raw_headers}
        exchange.delimited = b"content-length" in names or b"transfer-encoding" in names
        exchange.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        assert self.exchange is not None
        self.exchange.feed(body)

    def on_message_complete(self) -> None:
        exchange, self.exchange = self.exchange, None
        assert exchange is not None
        exchange.finish()
        self.answered += 1
        if self._parser.should_keep_alive():
            self._client._release(self)
        else:
            self.close()


class Response:
    """An answer: status and headers at once, the body as it comes (`aiter_bytes`) or whole
    (`aread`, then `content`). `aclose` before the end closes the connection."""

    def __init__(self, connection: _Connection, exchange: _Exchange) -> None:
        self._connection = connection
        self._exchange = exchange
        self.status_code = exchange.status
        self.reason_phrase = exchange.reason
        headers: dict[str, str] = {}
        for raw_name, raw_value in exchange.raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers: Mapping[str, str] = headers
        self.content = b""
        try:
            self._decoder = decoder(headers.get("content-encoding", ""))
        except UnsupportedEncodingError as exc:
            connection.close()
            raise RemoteProtocolError(str(exc)) from exc

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while (piece := await self._exchange.piece()) is not None:
            data = self._decoder.decompress(piece) if self._decoder is not None else piece
            if data:
                yield data
        if self._decoder is not None and (tail := self._decoder.flush()):
            yield tail

    async def aread(self) -> bytes:
        self.content = b"".join([piece async for piece in self.aiter_bytes()])
        return self.content

    async def aclose(self) -> None:
        if not self._exchange.complete:  # given up part-way: the connection cannot be reused
            self._connection.close()


class Client:
    """Requests to `base_url` (an `http` or `https` origin and a path prefix) with `headers` on
    each, over at most `max_connections` connections."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int = 100,
        keepalive_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        default_port = 443 if url.scheme == "https" else 80
        self.host, self.port = url.hostname, url.port or default_port
        self.prefix = url.path.rstrip("/") + "/"
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.max_connections = max_connections
        authority = self.host if self.port == default_port else f"{self.host}:{self.port}"
        fixed = {"host": authority, "accept": "*/*", "accept-encoding": ACCEPT_ENCODING}
        fixed |= {name.lower(): value for name, value in headers.items()}
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode()
        self._ssl = _ssl_context() if url.scheme == "https" else None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._opening = 0
        self._slots: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def connections(self) -> int:
        """Connections open, idle or in use."""
        return len(self._open)

    def request_bytes(self, path: str, body: bytes) -> bytes:
        """The POST of `body` to `path` (under the prefix), as it goes over the wire."""
        start = f"POST {self.prefix}{path} HTTP/1.1\r\n".encode()
        length = b"content-length: %d\r\n\r\n" % len(body)
        return start + self._head + length + body

    async def post(self, path: str, body: bytes) -> Response:
        """POST `body`; the answer, read whole."""
        response = await self.send(path, body)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def send(self, path: str, body: bytes) -> Response:
        """POST `body`; the answer once its headers came (the caller reads and closes it)."""
        request = self.request_bytes(path, body)
        for attempt in (1, 2):
            connection = await self._acquire()
            reused = connection.answered > 0
            exchange = connection.send(request)
            try:
                await exchange.headers_done
            except RemoteProtocolError:
                if attempt == 1 and reused and not exchange.anything:
                    continue  # closed by the server as it was taken: processed nothing
                raise
            except BaseException:
                connection.close()
                raise
            return Response(connection, exchange)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()

    # --- the pool -----------------------------------------------------------------------------

    async def _acquire(self) -> _Connection:
        self._loop = asyncio.get_running_loop()
        while True:
            now = self._loop.time()
            while self._idle:
                connection = self._idle.pop()
                if connection.closed:
                    continue
                if now - connection.idle_since > self.keepalive_s:
                    connection.close()
                    continue
                return connection
            if len(self._open) + self._opening < self.max_connections:
                return await self._connect()
            slot = self._loop.create_future()
            self._slots.append(slot)
            try:
                await slot
            except asyncio.CancelledError:
                if slot.done() and not slot.cancelled():
                    self._free_slot()  # woken as it was given up: the place goes to the next
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._slots.remove(slot)

    async def _connect(self) -> _Connection:
        self._opening += 1
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        finally:
            self._opening -= 1
            self._free_slot()
        self._open.add(connection)
        return connection

    def _release(self, connection: _Connection) -> None:
        connection.idle_since = self.loop.time()
        self._idle.append(connection)
        self._free_slot()

    def _closed(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        self._free_slot()

    def _free_slot(self) -> None:
        while self._slots:
            slot = self._slots.popleft()
            if not slot.done():
                slot.set_result(None)
                return


def _ssl_context() -> ssl.SSLContext:
    """Verified TLS with certifi's roots where installed (as httpx verifies), else the system's."""
    try:
        import certifi
    except ImportError:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context

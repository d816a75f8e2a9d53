"""The lean HTTP/1.1 client (agent/llm/http.py) against real servers on loopback: uvicorn for
what a well-behaved server answers, and raw sockets for the servers that close connections
early, answer garbage or never answer."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agent.llm import http
from devstack.harness.services import in_thread

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """uvicorn's answers: the request echoed as JSON, gzip or deflate on request, or chunked."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    headers = [(b"content-type", b"application/json")]
    if path.endswith("/chunked"):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in (b'{"a":', b" 1", b"}"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    payload = b'{"echo": "%s", "bytes": %d}' % (path.encode(), len(body))
    if path.endswith("/gzip"):
        payload, headers = gzip.compress(payload), [*headers, (b"content-encoding", b"gzip")]
    elif path.endswith("/deflate"):
        payload, headers = zlib.compress(payload), [*headers, (b"content-encoding", b"deflate")]
    status = 503 if path.endswith("/busy") else 200
    headers.append((b"retry-after", b"7"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def served() -> Any:
    with in_thread(_app, ready_path="/health", lifespan="off") as url:
        yield url


class RawServer:
    """A TCP server whose `handler` gets each connection (and its number, from 1)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer, self.connections)
            finally:
                writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"


async def _request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.fixture
async def client(served: str) -> AsyncIterator[http.Client]:
    client = http.Client(served + "/v1/", {"x-goog-api-key": "k"}, max_connections=4)
    yield client
    await client.aclose()


async def test_answers_are_read_whole_and_connections_kept_alive(client) -> None:
    for _ in range(3):
        response = await client.post("models/m:generateContent", b'{"q": 1}')
        assert response.status_code == 200 and response.is_success
        assert response.content == b'{"echo": "/v1/models/m:generateContent", "bytes": 8}'
        assert response.headers["retry-after"] == "7"
    assert client.connections == 1  # one connection for the three


async def test_compressed_and_chunked_answers_are_decoded(client) -> None:
    for encoding in ("gzip", "deflate"):
        response = await client.post(f"m/{encoding}", b"{}")
        assert response.content == f'{{"echo": "/v1/m/{encoding}", "bytes": 2}}'.encode()
    response = await client.send("m/chunked", b"{}")
    pieces = [piece async for piece in response.aiter_bytes()]
    await response.aclose()
    assert b"".join(pieces) == b'{"a": 1}'
    failed = await client.post("m/busy", b"{}")
    assert failed.status_code == 503 and not failed.is_success


async def test_concurrent_calls_wait_for_one_of_max_connections(client) -> None:
    answers = await asyncio.gather(*[client.post(f"m/{n}", b"") for n in range(12)])
    assert [a.status_code for a in answers] == [200] * 12
    assert client.connections <= 4


async def test_a_request_carries_the_headers_httpx_sends_and_its_body() -> None:
    seen: list[bytes] = []

    async def handler(reader, writer, n) -> None:
        seen.append(await _request(reader))
        writer.write(OK)
        await writer.drain()

    async with RawServer(handler) as server:
        client = http.Client(server.url, {"User-Agent": "vaia-agent/1", "X-Server-Timeout": "20"})
        await client.post("models/m:embed", b'{"x": 1}')
        await client.aclose()
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/models/m:embed HTTP/1.1" and body == b'{"x": 1}'
    assert dict(line.split(": ", 1) for line in lines[1:]) == {
        "host": f"127.0.0.1:{server.port}",
        "accept": "*/*",
        "accept-encoding": http.ACCEPT_ENCODING,
        "user-agent": "vaia-agent/1",
        "x-server-timeout": "20",
        "content-length": "8",
    }


async def test_a_connection_the_server_closed_when_idle_is_never_reused() -> None:
    async def handler(reader, writer, n) -> None:
        await _request(reader)
        writer.write(OK)  # keep-alive by default, then closed at once
        await writer.drain()

    async with RawServer(handler) as server:
        client = http.Client(server.url, {})
        for _ in range(3):
            assert (await client.post("m", b"")).content == b"ok"
            await asyncio.sleep(0.05)  # the close reaches the client
        await client.aclose()
    assert server.connections == 3


async def test_a_reused_connection_closed_as_it_was_taken_is_retried_once_on_a_new_one() -> None:
    async def handler(reader, writer, n) -> None:
        await _request(reader)
        writer.write(OK)
        await writer.drain()
        await _request(reader)  # the next request on it: closed unanswered

    async with RawServer(handler) as server:
        client = http.Client(server.url, {})
        assert (await client.post("m", b"")).content == b"ok"
        assert (await client.post("m", b"")).content == b"ok"
        await client.aclose()
    assert server.connections == 2


async def test_a_new_connection_closed_unanswered_is_an_error_not_a_retry() -> None:
    async def handler(reader, writer, n) -> None:
        await _request(reader)

    async with RawServer(handler) as server:
        client = http.Client(server.url, {})
        with pytest.raises(http.RemoteProtocolError, match="closed the connection"):
            await client.post("m", b"")
        await client.aclose()
    assert server.connections == 1


async def test_garbage_and_refused_connections_are_transport_errors() -> None:
    async def handler(reader, writer, n) -> None:
        await _request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        client = http.Client(server.url, {})
        with pytest.raises(http.RemoteProtocolError, match="not HTTP"):
            await client.post("m", b"")
        await client.aclose()
    closed = http.Client("http://127.0.0.1:9/", {})
    with pytest.raises(http.ConnectError):
        await closed.post("m", b"")
    assert closed.connections == 0


async def test_a_call_given_up_closes_its_connection_and_frees_its_place() -> None:
    ended = asyncio.Event()

    async def handler(reader, writer, n) -> None:
        await _request(reader)
        if n == 1:
            await reader.read()  # never answers; the read ends when the client closes
            ended.set()
            return
        writer.write(OK)
        await writer.drain()

    async with RawServer(handler) as server:
        client = http.Client(server.url, {}, max_connections=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.post("m", b"")
        await asyncio.wait_for(ended.wait(), 5)  # the server saw its client go
        assert (await client.post("m", b"")).content == b"ok"  # the only place is free
        await client.aclose()


async def test_a_waiter_given_up_as_its_place_came_passes_the_place_on() -> None:
    go_on = asyncio.Event()

    async def handler(reader, writer, n) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        await go_on.wait()  # the body of the first answer only when the test says
        writer.write(b"ok")
        while True:
            await _request(reader)
            writer.write(OK)
            await writer.drain()

    async with RawServer(handler) as server:
        client = http.Client(server.url, {}, max_connections=1)
        first = await client.send("m", b"")  # holds the only connection
        a = asyncio.create_task(client.post("m", b""))
        b = asyncio.create_task(client.post("m", b""))
        await asyncio.sleep(0.05)  # both wait for the place, a first
        go_on.set()
        await first.aread()  # the connection is released and a is woken, but has not run
        a.cancel()
        await first.aclose()
        assert (await asyncio.wait_for(b, 5)).content == b"ok"  # not stuck behind a
        assert a.cancelled()
        await client.aclose()


async def test_idle_connections_past_keepalive_are_closed_not_reused(served) -> None:
    client = http.Client(served + "/v1/", {}, keepalive_s=0)
    first = await client.post("m", b"")
    assert first.status_code == 200
    await asyncio.sleep(0.01)
    await client.post("m", b"")
    assert client.connections == 1  # the first was closed when the second call looked at it
    await client.aclose()

"""Clients for the serving measurements (`invoke bench --serving`, the streaming row of
`--gemini`): many concurrent HTTP/1.1 clients on one asyncio loop, raw sockets, so that hundreds
of them cost the shared cores little; they read Server-Sent Events and time the first `delta`.

`python -m devstack.perf.clients load --url URL --clients N --seconds S [--stream]` runs a closed
loop (each client asks, waits for its answer, asks again; a 503 or 429 with `Retry-After` waits
that long, as a well-behaved client does) and prints one JSON line: the answers by status, the
latencies of the answered ones, the times to the first `delta` event. Every question is unique,
so every request misses the agent's cache. `hang_up` (in process) asks and closes the connection
a set time later, before any answer: a client that gives up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

QUESTION = "How do I roll back a Deployment?"
INFER = "/v1/agent/infer"
STREAM = "/v1/agent/infer/stream"
REQUEST_TIMEOUT_S = 60.0  # an answer slower than this counts as none (TimeoutError)
_unique = itertools.count()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # until the last byte
    first_delta_s: float | None = None  # streams: until the first `event: delta`
    events: list[str] = field(default_factory=list)  # streams: event names in order


def question(seed: str) -> bytes:
    """A question no one asked before (a cache miss), as an infer body."""
    return json.dumps({"query": f"{QUESTION} (case {seed}-{next(_unique)})"}).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> Reply:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        started = time.perf_counter()
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        try:
            return await _read_reply(self._reader, started)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def _read_reply(reader: asyncio.StreamReader, started: float) -> Reply:
    status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    reply = Reply(status, headers, b"", 0.0)
    if headers.get("transfer-encoding") == "chunked":
        parts, pending = [], b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
            pending += data[:-2]
            *events, pending = pending.split(b"\n\n")
            for event in events:
                name = _event_name(event)
                reply.events.append(name)
                if name == "delta" and reply.first_delta_s is None:
                    reply.first_delta_s = time.perf_counter() - started
        reply.body = b"".join(parts)
    else:
        reply.body = await reader.readexactly(int(headers.get("content-length") or 0))
    reply.seconds = time.perf_counter() - started
    return reply


def _event_name(event: bytes) -> str:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode()
    return "message"


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    answered_s: list[float] = field(default_factory=list)  # 200s: end to end
    first_delta_s: list[float] = field(default_factory=list)
    shed_s: list[float] = field(default_factory=list)  # 503s: how long the refusal took
    errors: Counter[str] = field(default_factory=Counter)  # no HTTP answer at all
    stream_errors: int = 0  # streams that ended in an `error` event

    def summary(self) -> dict[str, object]:
        ms = {
            f"{name}_{label}_ms": None if value is None else round(1000 * value, 1)
            for name, values in (
                ("answered", self.answered_s),
                ("first_delta", self.first_delta_s),
                ("shed", self.shed_s),
            )
            for label, value in (
                ("p50", percentile(values, 0.5)),
                ("p95", percentile(values, 0.95)),
                ("max", max(values) if values else None),
            )
        }
        return {
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "stream_errors": self.stream_errors,
            **ms,
        }


async def closed_loop(
    url: str, clients: int, seconds: float, stream: bool = False, spread_s: float = 1.0
) -> LoadResult:
    """`clients` concurrent clients asking unique questions for `seconds`, started over
    `spread_s` (not all in the same millisecond)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = STREAM if stream else INFER
    result = LoadResult()
    seed = secrets.token_hex(3)
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        await asyncio.sleep(spread_s * index / clients)
        connection = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        reply = await connection.request("POST", path, question(seed))
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                    result.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.1)
                    continue
                result.statuses[reply.status] += 1
                if reply.status == 200:
                    result.answered_s.append(reply.seconds)
                    if reply.first_delta_s is not None:
                        result.first_delta_s.append(reply.first_delta_s)
                    if "error" in reply.events:
                        result.stream_errors += 1
                elif reply.status in (429, 503):
                    result.shed_s.append(reply.seconds)
                    with contextlib.suppress(ValueError):
                        await asyncio.sleep(float(reply.headers.get("retry-after", "1")))
        finally:
            connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return result


async def hang_up(
    url: str, clients: int, after_s: float, stream: bool = False, query: str | None = None
) -> None:
    """`clients` clients that each ask (a unique question, or all `query`) and close the
    connection `after_s` later, whatever they got."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = STREAM if stream else INFER
    seed = secrets.token_hex(3)

    async def client() -> None:
        _, writer = await asyncio.open_connection(host, port)
        body = question(seed) if query is None else json.dumps({"query": query}).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await asyncio.sleep(after_s)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    await asyncio.gather(*(client() for _ in range(clients)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.perf.clients")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="a closed loop of concurrent clients; prints JSON")
    load.add_argument("--url", required=True)
    load.add_argument("--clients", type=int, required=True)
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--stream", action="store_true", help="ask the streaming endpoint")
    args = parser.parse_args(argv)
    result = asyncio.run(closed_loop(args.url, args.clients, args.seconds, args.stream))
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()

"""A stand-in of Gemini's REST API in its own process, for `invoke bench` and the tests that need
Gemini slow, streaming, out of quota or abandoned by its client.

`python -m devstack.perf.gemini_standin --port N [--latency-ms 300] ...`: generateContent answers
after a set latency (300 ms by default), the embedding methods after their own (none by default),
streamGenerateContent (`?alt=sse`) sends its answer as Server-Sent Events, a few chunks spread over
a set time. Modes, from the command line or changed at run time with `POST /control` (a JSON object
of the same fields, `Behaviour` below):

- `quota_exhausted`: every generate and stream call answers 429 RESOURCE_EXHAUSTED, with
  `Retry-After: <retry_after>` (no header when it is empty);
- `stall_after`: a stream sends this many chunks, then nothing more (the connection stays open);
- `fail_after`: a stream sends this many chunks, then an error event (as Gemini does mid-stream);
- `trickle`: generate and embedding answers are sent a byte at a time, 5 a second, so that only a
  deadline on the whole call ends them (a per-read timeout never fires);
- `tool_rounds`: the first rounds of each conversation (generate calls whose request has fewer
  function responses) ask for the `search_knowledge` tool instead of answering.

It runs in its own process so that its CPU is not the agent's, on a plain asyncio server that holds
any number of slow responses at once (each is a sleeping coroutine, not a thread). HTTP/1.1 with
keep-alive, which is what the SDK's httpx pool speaks; just enough of it for one client that sends
well-formed requests. While it holds a call it watches the connection: a client that goes away
is counted as having abandoned the call (`GET /stats`: `calls`, `completed` and `abandoned` by
method), which is how the tests see that the agent cancelled it.

Its answers have the shapes of the real API's (the integration tests' stand-in,
tests/support/gemini_standin.py, is the reference the agent's tests run against): a text
candidate citing the first context passage, and unit vectors of the hashing embedder, so that
retrieval over the seeded runbooks finds passages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agent.embeddings.hashing import HashingEmbedder

_PATH = re.compile(rb"^/v1(?:beta)?/models/[^:/]+:(\w+)(?:\?.*)?$")
_SOURCE = re.compile(r'<source n="1"[^>]*>\n(.*?)\n</source>', re.S)
MAX_BODY = 50_000_000
TRICKLE_BYTES_PER_SECOND = 5
GENERATE = ("generateContent", "streamGenerateContent")


@dataclass
class Behaviour:
    latency_ms: float = 300.0  # generateContent
    embed_latency_ms: float = 0.0
    quota_exhausted: bool = False
    retry_after: str = "30"  # on quota answers; "" sends none
    stream_chunks: int = 5
    stream_ms: float = 1000.0  # chunk i (from 1) is sent at i * stream_ms / stream_chunks
    stall_after: int | None = None
    fail_after: int | None = None
    trickle: bool = False
    tool_rounds: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)


class _Gone(Exception):
    """The client closed the connection before the answer was complete."""


class StandIn:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self.open_connections = 0
        self.accepted = 0
        self.most_in_flight = 0
        self._in_flight = 0
        self._started = time.monotonic()
        # When each stream's first chunk went out, seconds after the call arrived.
        self.first_chunk_s: list[float] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.accepted += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length > MAX_BODY:
                    return
                body = await reader.readexactly(length) if length else b""
                keep_alive = headers.get("connection", "").lower() != "close"
                self._in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self._in_flight)
                try:
                    await self.respond(method, target.encode("latin-1"), body, reader, writer)
                except _Gone:
                    return
                finally:
                    self._in_flight -= 1
                if not keep_alive:
                    return
        except (asyncio.CancelledError, ConnectionError):
            return  # shutting down, or the client went away: nothing to answer
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def respond(
        self,
        method: str,
        target: bytes,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        b = self.behaviour
        if method == "GET" and target == b"/health":
            return await _send(writer, 200, b'{"status": "ok"}')
        if method == "GET" and target == b"/stats":
            return await _send(writer, 200, json.dumps(self.stats()).encode())
        if method == "POST" and target == b"/control":
            try:
                b.update(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return await _send(writer, 400, json.dumps({"error": str(exc)}).encode())
            return await _send(writer, 200, json.dumps(dataclasses.asdict(b)).encode())
        match = _PATH.match(target) if method == "POST" else None
        if match is None:
            return await _send(writer, 404, _error(404, "NOT_FOUND", "no route"))
        call = match.group(1).decode()
        self.calls[call] += 1
        request = json.loads(body or b"{}")
        try:
            await self._answer(call, request, reader, writer)
        except _Gone:
            self.abandoned[call] += 1
            raise
        self.completed[call] += 1

    async def _answer(
        self,
        call: str,
        request: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        b = self.behaviour
        if call in GENERATE and b.quota_exhausted:
            extra = [(b"retry-after", b.retry_after.encode())] if b.retry_after else []
            message = "Quota exceeded for metric: generate_content_requests"
            return await _send(writer, 429, _error(429, "RESOURCE_EXHAUSTED", message), extra)
        if call == "streamGenerateContent":
            return await self._stream(request, reader, writer)
        if call == "generateContent":
            await _hold(reader, b.latency_ms / 1000)
            rounds = sum(
                "functionResponse" in part
                for content in request.get("contents", [])
                for part in content.get("parts", [])
            )
            payload = tool_call() if rounds < b.tool_rounds else generated(request)
        elif call in ("embedContent", "batchEmbedContents"):
            await _hold(reader, b.embed_latency_ms / 1000)
            if call == "embedContent":
                payload = b'{"embedding": {"values": %s}}' % embedding(request)
            else:
                vectors = b", ".join(
                    b'{"values": %s}' % embedding(item) for item in request.get("requests", [])
                )
                payload = b'{"embeddings": [%s]}' % vectors
        else:
            return await _send(writer, 404, _error(404, "NOT_FOUND", "no method"))
        if b.trickle:
            return await _trickle(reader, writer, payload)
        await _send(writer, 200, payload)

    async def _stream(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The answer as `data:` events of GenerateContentResponse chunks, chunked encoding."""
        b = self.behaviour
        arrived = time.monotonic()
        pieces = split_text(answer_text(request), max(1, b.stream_chunks))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        await _drain(writer)
        interval = b.stream_ms / 1000 / len(pieces)
        for index, piece in enumerate(pieces):
            await _hold(reader, interval)
            if b.stall_after is not None and index >= b.stall_after:
                await _hold(reader, 3600)  # until the client gives up
            if b.fail_after is not None and index >= b.fail_after:
                error = _error(500, "INTERNAL", "An internal error has occurred mid-stream.")
                await _chunk(writer, b"data: " + error + b"\r\n\r\n")
                break
            last = index == len(pieces) - 1
            event = stream_chunk(piece, last, request)
            await _chunk(writer, b"data: " + event + b"\r\n\r\n")
            if index == 0:
                self.first_chunk_s.append(time.monotonic() - arrived)
        await _chunk(writer, b"")

    def stats(self) -> dict[str, Any]:
        firsts = sorted(self.first_chunk_s)
        return {
            "calls": dict(self.calls),
            "completed": dict(self.completed),
            "abandoned": dict(self.abandoned),
            "in_flight": self._in_flight - 1,  # less this question's own
            "open_connections": self.open_connections,
            "accepted_connections": self.accepted,
            "most_in_flight": self.most_in_flight,
            "first_chunk_p50_ms": 1000 * firsts[len(firsts) // 2] if firsts else None,
        }


async def _hold(reader: asyncio.StreamReader, seconds: float) -> None:
    """Wait `seconds`, or raise _Gone as soon as the client closes the connection. The client
    sends nothing while it waits for an answer (no pipelining), so any read ends at its EOF."""
    if seconds <= 0:
        if reader.at_eof():
            raise _Gone
        return
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return
    raise _Gone


async def _drain(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        raise _Gone
    try:
        await writer.drain()
    except ConnectionError as exc:
        raise _Gone from exc


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    payload: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = b"".join(b"%s: %s\r\n" % pair for pair in extra or [])
    writer.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (status, b"OK" if status == 200 else b"Error", len(payload), headers)
        + payload
    )
    await _drain(writer)


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    """One piece of a chunked body; b"" ends it."""
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await _drain(writer)


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(body)
    )
    for index in range(len(body)):
        writer.write(body[index : index + 1])
        await _drain(writer)
        await _hold(reader, 1 / TRICKLE_BYTES_PER_SECOND)


def _error(code: int, status: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


def answer_text(request: dict[str, Any]) -> str:
    """A grounded answer: quotes the first context passage and cites it as [1]."""
    text = " ".join(p.get("text", "") for c in request.get("contents", []) for p in c["parts"])
    match = _SOURCE.search(text)
    if match:
        return f"Per the runbook: {match.group(1)[:160].strip()} [1]"
    return "I have no passages about that."


def split_text(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` parts of about the same length (fewer when it is shorter)."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _usage(request: dict[str, Any], answer: str) -> dict[str, int]:
    text = " ".join(p.get("text", "") for c in request.get("contents", []) for p in c["parts"])
    return {
        "promptTokenCount": len(text) // 4,
        "candidatesTokenCount": len(answer) // 4,
        "totalTokenCount": (len(text) + len(answer)) // 4,
    }


def generated(request: dict[str, Any]) -> bytes:
    answer = answer_text(request)
    return json.dumps(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": answer}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": _usage(request, answer),
            "modelVersion": "bench-standin",
        }
    ).encode()


def tool_call() -> bytes:
    part = {"functionCall": {"name": "search_knowledge", "args": {"query": "rollback"}}}
    candidate = {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}
    return json.dumps({"candidates": [candidate], "modelVersion": "bench-standin"}).encode()


def stream_chunk(piece: str, last: bool, request: dict[str, Any]) -> bytes:
    """One GenerateContentResponse of a stream: a text delta; the last one finishes."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}}
    if last:
        candidate["finishReason"] = "STOP"
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "bench-standin"}
    if last:
        chunk["usageMetadata"] = _usage(request, piece)
    return json.dumps(chunk).encode()


def embedding(request: dict[str, Any]) -> bytes:
    text = " ".join(p.get("text", "") for p in request.get("content", {}).get("parts", []))
    return _vector(text, int(request.get("outputDimensionality") or 768))


@lru_cache(maxsize=4096)
def _vector(text: str, dimensions: int) -> bytes:
    values = HashingEmbedder(dimensions).embed_one(text)
    return ("[" + ", ".join(f"{v:.6f}" for v in values) + "]").encode()


async def main(port: int, behaviour: Behaviour) -> None:
    standin = StandIn(behaviour)
    server = await asyncio.start_server(standin.serve, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def parse(argv: list[str] | None = None) -> tuple[int, Behaviour]:
    parser = argparse.ArgumentParser(prog="python -m devstack.perf.gemini_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--embed-latency-ms", type=float, default=0.0)
    parser.add_argument("--quota-exhausted", action="store_true")
    parser.add_argument("--retry-after", default="30", help='on quota answers; "" for none')
    parser.add_argument("--stream-chunks", type=int, default=5)
    parser.add_argument("--stream-ms", type=float, default=1000.0)
    parser.add_argument("--stall-after", type=int, default=None)
    parser.add_argument("--fail-after", type=int, default=None)
    parser.add_argument("--trickle", action="store_true")
    parser.add_argument("--tool-rounds", type=int, default=0)
    args = vars(parser.parse_args(argv))
    port = args.pop("port")
    return port, Behaviour(**args)


def run(argv: list[str] | None = None) -> None:
    port, behaviour = parse(argv)
    serve = main(port, behaviour)
    try:
        import uvloop  # the stand-in's CPU is not under test: the cheapest loop there is
    except ImportError:
        asyncio.run(serve)
    else:
        uvloop.run(serve)


if __name__ == "__main__":
    run()

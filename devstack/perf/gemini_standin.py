"""A slow stand-in of Gemini's REST API for `invoke bench`: generateContent answers after a set
latency (300 ms by default), the embedding methods after their own (none by default).

It runs in its own process (`python -m devstack.perf.gemini_standin --port N`), so that its CPU is
not the agent's, on a plain asyncio server that holds any number of slow responses at once (each
is a sleeping coroutine, not a thread). HTTP/1.1 with keep-alive, which is what the SDK's httpx
pool speaks; just enough of it for one client that sends well-formed requests.

Its answers have the shapes of the real API's (the integration tests' stand-in,
tests/support/gemini_standin.py, is the reference the agent's tests run against): a text
candidate citing the first context passage, and unit vectors of the hashing embedder, so that
retrieval over the seeded runbooks finds passages. GET /stats counts the calls by method, so
that a benchmark can say how many Gemini calls each request made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
from collections import Counter
from functools import lru_cache
from typing import Any

from agent.embeddings.hashing import HashingEmbedder

_PATH = re.compile(rb"^/v1(?:beta)?/models/[^:/]+:(\w+)(?:\?.*)?$")
_SOURCE = re.compile(r'<source n="1"[^>]*>\n(.*?)\n</source>', re.S)
MAX_BODY = 50_000_000


class StandIn:
    def __init__(self, latency_s: float, embed_latency_s: float) -> None:
        self.latency_s = latency_s
        self.embed_latency_s = embed_latency_s
        self.calls: Counter[str] = Counter()
        self.open_connections = 0
        self.accepted = 0
        self.most_in_flight = 0
        self._in_flight = 0

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
                self._in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self._in_flight)
                try:
                    status, payload = await self.answer(method, target.encode("latin-1"), body)
                finally:
                    self._in_flight -= 1
                keep_alive = headers.get("connection", "").lower() != "close"
                writer.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                    b"%s\r\n"
                    % (
                        status,
                        b"OK" if status == 200 else b"Error",
                        len(payload),
                        b"" if keep_alive else b"connection: close\r\n",
                    )
                    + payload
                )
                await writer.drain()
                if not keep_alive:
                    return
        except (asyncio.CancelledError, ConnectionError):
            return  # shutting down, or the client went away: nothing to answer
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, method: str, target: bytes, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and target == b"/health":
            return 200, b'{"status": "ok"}'
        if method == "GET" and target == b"/stats":
            stats = {
                "calls": dict(self.calls),
                "open_connections": self.open_connections,
                "accepted_connections": self.accepted,
                "most_in_flight": self.most_in_flight,
            }
            return 200, json.dumps(stats).encode()
        match = _PATH.match(target) if method == "POST" else None
        if match is None:
            return 404, b'{"error": {"code": 404, "status": "NOT_FOUND", "message": "no route"}}'
        call = match.group(1).decode()
        self.calls[call] += 1
        request = json.loads(body or b"{}")
        if call == "generateContent":
            await asyncio.sleep(self.latency_s)
            return 200, generated(request)
        if call in ("embedContent", "batchEmbedContents"):
            if self.embed_latency_s:
                await asyncio.sleep(self.embed_latency_s)
            if call == "embedContent":
                return 200, b'{"embedding": {"values": %s}}' % embedding(request)
            vectors = b", ".join(
                b'{"values": %s}' % embedding(item) for item in request.get("requests", [])
            )
            return 200, b'{"embeddings": [%s]}' % vectors
        return 404, b'{"error": {"code": 404, "status": "NOT_FOUND", "message": "no method"}}'


def generated(request: dict[str, Any]) -> bytes:
    """A grounded answer: quotes the first context passage and cites it as [1]."""
    text = " ".join(p.get("text", "") for c in request.get("contents", []) for p in c["parts"])
    match = _SOURCE.search(text)
    answer = (
        f"Per the runbook: {match.group(1)[:160].strip()} [1]"
        if match
        else "I have no passages about that."
    )
    return json.dumps(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": answer}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": len(text) // 4,
                "candidatesTokenCount": len(answer) // 4,
                "totalTokenCount": (len(text) + len(answer)) // 4,
            },
            "modelVersion": "bench-standin",
        }
    ).encode()


def embedding(request: dict[str, Any]) -> bytes:
    text = " ".join(p.get("text", "") for p in request.get("content", {}).get("parts", []))
    return _vector(text, int(request.get("outputDimensionality") or 768))


@lru_cache(maxsize=4096)
def _vector(text: str, dimensions: int) -> bytes:
    values = HashingEmbedder(dimensions).embed_one(text)
    return ("[" + ", ".join(f"{v:.6f}" for v in values) + "]").encode()


async def main(port: int, latency_ms: float, embed_latency_ms: float) -> None:
    standin = StandIn(latency_ms / 1000, embed_latency_ms / 1000)
    server = await asyncio.start_server(standin.serve, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.perf.gemini_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--embed-latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    serve = main(args.port, args.latency_ms, args.embed_latency_ms)
    try:
        import uvloop  # the stand-in's CPU is not under test: the cheapest loop there is
    except ImportError:
        asyncio.run(serve)
    else:
        uvloop.run(serve)


if __name__ == "__main__":
    run()

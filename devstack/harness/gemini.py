"""A stand-in of Gemini's REST API (generateContent, streamGenerateContent?alt=sse, embedContent,
batchEmbedContents), for the tests and the benchmarks alike: an ASGI app served by uvicorn, in a
thread of the caller (`services.in_thread`, where a test scripts it and reads what it recorded)
or in its own process (`python -m devstack.harness.gemini --port N`: its CPU is not the agent's).

- **Scripted replies**, consumed in order per method: `fail` (an error status, Retry-After, error
  details), `reply_text`, `reply_function_call`, `reply` (any body); a stream answers with the
  generate script when it has none of its own, a part (half a text part) per chunk.
- **Default answers** in the real API's shapes: a text that quotes the first context passage and
  cites it as [1], a function call for the first `tool_rounds` rounds of a conversation, and unit
  vectors of the hashing embedder (so that retrieval over the seeded runbooks finds passages).
- **Modes** (`Behaviour`, changed at run time with `POST /control`): latencies, a spent quota
  (429 RESOURCE_EXHAUSTED with `Retry-After`), streams of N chunks over a set time that stall or
  fail part-way, answers trickled a byte at a time (only a deadline on the whole call ends them).
- **Recording**: each request's method, model, path, headers, body and raw bytes (in-process);
  and `GET /stats`: calls, completed and abandoned by method. While it holds a call it listens
  for the client's disconnect: a client that goes away is counted as having abandoned the call,
  which is how the tests see that the agent cancelled it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from agent.embeddings.hashing import HashingEmbedder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers

_PATH = re.compile(r"^/(?P<version>v1(?:beta)?)/models/(?P<model>[^:/]+):(?P<method>\w+)$")
_SOURCE = re.compile(r'<source n="1"[^>]*>\n(.*?)\n</source>', re.S)
GENERATE = ("generateContent", "streamGenerateContent")
TRICKLE_BYTES_PER_SECOND = 5
MODEL_VERSION = "standin"
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class Behaviour:
    latency_ms: float = 0.0  # generateContent
    embed_latency_ms: float = 0.0
    quota_exhausted: bool = False  # every generate and stream call: 429 RESOURCE_EXHAUSTED
    retry_after: str = "30"  # on quota answers; "" sends none
    stream_chunks: int = 5  # a default answer's stream: this many chunks...
    stream_ms: float = 0.0  # ...chunk i (from 1) sent at i * stream_ms / chunks
    stall_after: int | None = None  # a stream sends this many chunks, then nothing more
    fail_after: int | None = None  # a stream sends this many chunks, then an error event
    trickle: bool = False  # generate and embedding answers a byte at a time
    tool_rounds: int = 0  # generate calls with fewer function responses ask for a tool

    def update(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)


@dataclass
class Recorded:
    method: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""  # with the query string
    raw: bytes = b""  # what went over the wire, for byte-for-byte comparisons


class _Gone(Exception):
    """The client closed the connection before the answer was complete."""


@dataclass
class GeminiStandIn:
    behaviour: Behaviour = field(default_factory=Behaviour)
    api_key: str | None = None  # None: any key
    record: bool = True  # keep every request (tests); a benchmark's process counts only
    url: str = ""  # where it is served, set by whoever serves it
    requests: list[Recorded] = field(default_factory=list)
    arrived: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    abandoned: Counter[str] = field(default_factory=Counter)
    first_chunk_s: list[float] = field(default_factory=list)  # of default streams
    _script: dict[str, deque[Reply]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: int = 0
    _most_in_flight: int = 0
    _clients: set[tuple[str, int]] = field(default_factory=set)

    # --- scripting (in-process) ---------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        error: dict[str, Any] = {
            "code": status,
            "message": f"scripted {status}",
            "status": STATUS.get(status, "UNKNOWN"),
        }
        if details is not None:
            error["details"] = details
        headers = {"retry-after": retry_after} if retry_after else {}
        for _ in range(times):
            self._push(method, (status, {"error": error}, headers))

    def reply_function_call(self, name: str, args: dict[str, Any]) -> None:
        self.reply("generateContent", candidate([{"functionCall": {"name": name, "args": args}}]))

    def reply_text(self, text: str) -> None:
        self.reply("generateContent", candidate([{"text": text}]))

    def reply(self, method: str, body: dict[str, Any]) -> None:
        """Answer the next `method` call with this body (200), whatever its shape."""
        self._push(method, (200, body, {}))

    def _push(self, method: str, reply: Reply) -> None:
        with self._lock:
            self._script.setdefault(method, deque()).append(reply)

    def _scripted(self, method: str) -> Reply | None:
        with self._lock:
            queue = self._script.get(method)
            if not queue and method == "streamGenerateContent":
                queue = self._script.get("generateContent")
            return queue.popleft() if queue else None

    def calls(self, method: str) -> list[Recorded]:
        """The recorded requests of `method`, in order."""
        return [r for r in self.requests if r.method == method]

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.arrived),
            "completed": dict(self.completed),
            "abandoned": dict(self.abandoned),
            "in_flight": self._in_flight,
            "most_in_flight": self._most_in_flight,
            "connections": len(self._clients),  # distinct client connections that called
            "first_chunk_p50_ms": (
                1000 * statistics.median(self.first_chunk_s) if self.first_chunk_s else None
            ),
        }

    # --- serving (ASGI) -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            body = await _body(receive)
        except _Gone:
            return
        if method == "GET" and path == "/health":
            return await _json(send, 200, {"status": "ok"})
        if method == "GET" and path == "/stats":
            return await _json(send, 200, self.stats())
        if method == "POST" and path == "/control":
            try:
                self.behaviour.update(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return await _json(send, 400, {"error": str(exc)})
            return await _json(send, 200, dataclasses.asdict(self.behaviour))
        match = _PATH.match(path) if method == "POST" else None
        if match is None:
            return await _json(send, 404, _error(404, f"no route {method} {path}"))
        call = match["method"]
        request = json.loads(body or b"{}")
        if self.record:
            query = scope.get("query_string", b"").decode("latin-1")
            target = f"{path}?{query}" if query else path
            self.requests.append(
                Recorded(call, match["model"], request, _headers(scope), target, body)
            )
        if scope.get("client"):
            self._clients.add(tuple(scope["client"]))
        self.arrived[call] += 1
        self._in_flight += 1
        self._most_in_flight = max(self._most_in_flight, self._in_flight)
        try:
            await self._answer(call, request, _headers(scope), receive, send)
        except _Gone:
            self.abandoned[call] += 1
        else:
            self.completed[call] += 1
        finally:
            self._in_flight -= 1

    async def _answer(
        self,
        call: str,
        request: dict[str, Any],
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        b = self.behaviour
        scripted = self._scripted(call)
        wrong_key = self.api_key is not None and headers.get("x-goog-api-key") != self.api_key
        if scripted is None and wrong_key:
            return await _json(send, 400, _invalid_key())
        if scripted is not None:
            status, body, extra = scripted
            if call == "streamGenerateContent" and status == 200:
                return await self._stream(stream_chunks(body), receive, send, timed=False)
            return await _json(send, status, body, extra)
        if call in GENERATE and b.quota_exhausted:
            extra = {"retry-after": b.retry_after} if b.retry_after else {}
            message = "Quota exceeded for metric: generate_content_requests"
            return await _json(send, 429, _error(429, message), extra)
        if call == "streamGenerateContent":
            pieces = split_text(answer_text(request), max(1, b.stream_chunks))
            chunks = [text_chunk(piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)]
            return await self._stream(chunks, receive, send, timed=True)
        if call == "generateContent":
            await _hold(receive, b.latency_ms / 1000)
            rounds = sum(
                "functionResponse" in part
                for content in request.get("contents", [])
                for part in content.get("parts", [])
            )
            answer = tool_call() if rounds < b.tool_rounds else generated(request)
            payload = json.dumps(answer).encode()
        elif call == "embedContent":
            await _hold(receive, b.embed_latency_ms / 1000)
            payload = b'{"embedding": {"values": %s}}' % embedding(request)
        elif call == "batchEmbedContents":
            await _hold(receive, b.embed_latency_ms / 1000)
            vectors = [b'{"values": %s}' % embedding(r) for r in request.get("requests", [])]
            payload = b'{"embeddings": [%s]}' % b", ".join(vectors)
        else:
            return await _json(send, 404, _error(404, f"no method {call}"))
        if b.trickle:
            return await _trickle(payload, receive, send)
        await _send(send, 200, payload)

    async def _stream(
        self, chunks: list[dict[str, Any]], receive: Receive, send: Send, timed: bool
    ) -> None:
        """The chunks as `data:` events over `stream_ms`, stalling or failing as told."""
        b = self.behaviour
        arrived = time.monotonic()
        await send(_start(200, "text/event-stream"))
        interval = b.stream_ms / 1000 / max(1, len(chunks))
        for index, chunk in enumerate(chunks):
            await _hold(receive, interval)
            if b.stall_after is not None and index >= b.stall_after:
                await _hold(receive, 3600)  # until the client gives up
            if b.fail_after is not None and index >= b.fail_after:
                error = _error(500, "An internal error has occurred mid-stream.")
                await _body_part(send, _event(error))
                break
            await _body_part(send, _event(chunk))
            if index == 0 and timed:
                self.first_chunk_s.append(time.monotonic() - arrived)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- HTTP -------------------------------------------------------------------------------------


async def _body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _hold(receive: Receive, seconds: float) -> None:
    """Wait `seconds`, or raise _Gone as soon as the client closes the connection (the server
    then has nothing more for this request but its disconnect)."""
    if seconds <= 0:
        return
    try:
        message = await asyncio.wait_for(receive(), seconds)
    except TimeoutError:
        return
    if message["type"] == "http.disconnect":
        raise _Gone


def _start(
    status: int, content_type: str, extra: dict[str, str] | None = None, length: int = -1
) -> Message:
    headers: list[tuple[bytes, bytes]] = [(b"content-type", content_type.encode())]
    if length >= 0:
        headers.append((b"content-length", str(length).encode()))
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _send(
    send: Send, status: int, payload: bytes, extra: dict[str, str] | None = None
) -> None:
    await send(_start(status, "application/json", extra, len(payload)))
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _json(send: Send, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
    await _send(send, status, json.dumps(body).encode(), extra)


async def _body_part(send: Send, data: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    except OSError as exc:  # ASGI 2.4 servers say so when the client has gone
        raise _Gone from exc


async def _trickle(payload: bytes, receive: Receive, send: Send) -> None:
    await send(_start(200, "application/json", None, len(payload)))
    for index in range(len(payload)):
        await _body_part(send, payload[index : index + 1])
        await _hold(receive, 1 / TRICKLE_BYTES_PER_SECOND)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": STATUS.get(code, "UNKNOWN")}}


def _invalid_key() -> dict[str, Any]:
    error = _error(400, "API key not valid. Please pass a valid API key.")
    error["error"]["details"] = [{"reason": "API_KEY_INVALID"}]
    return error


# --- answers ----------------------------------------------------------------------------------


def _prompt(request: dict[str, Any]) -> str:
    return " ".join(
        p.get("text", "") for c in request.get("contents", []) for p in c.get("parts", [])
    )


def answer_text(request: dict[str, Any]) -> str:
    """A grounded answer: quotes the first context passage and cites it as [1]."""
    match = _SOURCE.search(_prompt(request))
    if match:
        return f"Per the runbook: {match.group(1)[:160].strip()} [1]"
    return "I have no passages about that."


def _usage(request: dict[str, Any], answer: str) -> dict[str, int]:
    prompt = len(_prompt(request)) // 4
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": len(answer) // 4,
        "totalTokenCount": prompt + len(answer) // 4,
    }


def candidate(parts: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A GenerateContentResponse with one finished candidate of these parts."""
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": usage or {"promptTokenCount": 0, "totalTokenCount": 0},
        "modelVersion": MODEL_VERSION,
    }


def generated(request: dict[str, Any]) -> dict[str, Any]:
    answer = answer_text(request)
    return candidate([{"text": answer}], _usage(request, answer))


def tool_call() -> dict[str, Any]:
    part = {"functionCall": {"name": "search_knowledge", "args": {"query": "rollback"}}}
    return candidate([part])


def split_text(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` parts of about the same length (fewer when it is shorter)."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def text_chunk(piece: str, last: bool) -> dict[str, Any]:
    """One GenerateContentResponse of a stream: a text delta; the last one finishes."""
    content: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}}
    if last:
        content["finishReason"] = "STOP"
    return {"candidates": [content], "modelVersion": MODEL_VERSION}


def stream_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A scripted answer as streamGenerateContent sends it: a chunk per part, a text part in two
    halves; the last chunk carries the finish reason, the usage and the prompt feedback."""
    candidates = answer.get("candidates") or []
    if not candidates:
        return [answer]
    parts = (candidates[0].get("content") or {}).get("parts") or []
    pieces: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text")
        if isinstance(text, str) and len(text) > 1 and set(part) == {"text"}:
            half = len(text) // 2
            pieces += [{"text": text[:half]}, {"text": text[half:]}]
        else:
            pieces.append(part)
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}]}
        for piece in pieces
    ] or [{"candidates": [{"index": 0}]}]
    last = chunks[-1]
    if "finishReason" in candidates[0]:
        last["candidates"][0]["finishReason"] = candidates[0]["finishReason"]
    for key in ("usageMetadata", "modelVersion", "promptFeedback"):
        if key in answer:
            last[key] = answer[key]
    return chunks


def embedding(request: dict[str, Any]) -> bytes:
    text = " ".join(p.get("text", "") for p in request.get("content", {}).get("parts", []))
    return _vector(text, int(request.get("outputDimensionality") or 768))


@lru_cache(maxsize=4096)
def _vector(text: str, dimensions: int) -> bytes:
    return json.dumps(HashingEmbedder(dimensions).embed_one(text)).encode()


# --- its own process --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m devstack.harness.gemini")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=None, help="refuse other keys (default: any)")
    parser.add_argument("--behaviour", default="{}", help="JSON of Behaviour's fields")
    args = parser.parse_args(argv)
    behaviour = Behaviour()
    behaviour.update(json.loads(args.behaviour))
    standin = GeminiStandIn(behaviour, api_key=args.api_key, record=False)
    uvicorn.run(
        standin,
        host="127.0.0.1",
        port=args.port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=120,  # the agent keeps its connections 30 s
    )


if __name__ == "__main__":
    main()

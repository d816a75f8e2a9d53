"""A local stand-in for the Gemini REST API (v1beta): generateContent, streamGenerateContent
(`?alt=sse`: the same answers, scripted ones included, sent as Server-Sent Events a part or half
a text part at a time), embedContent and batchEmbedContents, with scripted failures (429, 500,
...) and scripted function calls.

The real google-genai SDK talks to it through GOOGLE_GEMINI_BASE_URL / http_options.base_url,
so the tests exercise the SDK's request building and response parsing, not a mock of it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.embeddings.hashing import HashingEmbedder

_PATH = re.compile(r"^/(?P<version>v1(?:beta)?)/models/(?P<model>[^:/]+):(?P<method>\w+)$")


@dataclass
class Recorded:
    method: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    # What went over the wire, for tests that compare requests byte for byte.
    path: str = ""
    raw: bytes = b""


@dataclass
class GeminiStandIn:
    api_key: str = "test-key-123"
    requests: list[Recorded] = field(default_factory=list)
    # Scripted replies, consumed in order per method: (status, body, headers).
    _script: dict[str, deque[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting ---------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after else {}
        error: dict[str, Any] = {
            "code": status,
            "message": f"scripted {status}",
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        if details is not None:
            error["details"] = details
        body = {"error": error}
        for _ in range(times):
            self._push(method, (status, body, headers))

    def reply_function_call(self, name: str, args: dict[str, Any]) -> None:
        part = {"functionCall": {"name": name, "args": args}}
        self._push("generateContent", (200, _candidate([part]), {}))

    def reply_text(self, text: str) -> None:
        self._push("generateContent", (200, _candidate([{"text": text}]), {}))

    def reply(self, method: str, body: dict[str, Any]) -> None:
        """Answer the next `method` call with this body (200), whatever its shape."""
        self._push(method, (200, body, {}))

    def _push(self, method: str, reply: tuple[int, dict[str, Any], dict[str, str]]) -> None:
        with self._lock:
            self._script.setdefault(method, deque()).append(reply)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    # --- serving -----------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        model: str,
        body: dict[str, Any],
        headers: dict[str, str],
        path: str = "",
        raw: bytes = b"",
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(Recorded(method, model, body, headers, path, raw))
            queue = self._script.get(method)
            if not queue and method == "streamGenerateContent":  # answers scripted for both
                queue = self._script.get("generateContent")
            if queue:
                return queue.popleft()
        if headers.get("x-goog-api-key") != self.api_key:
            return (
                400,
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": "API key not valid. Please pass a valid API key.",
                        "details": [{"reason": "API_KEY_INVALID"}],
                    }
                },
                {},
            )
        if method in ("generateContent", "streamGenerateContent"):
            return 200, _default_answer(body), {}
        if method == "embedContent":
            return 200, {"embedding": {"values": _embed(body)}}, {}
        if method == "batchEmbedContents":
            return (
                200,
                {"embeddings": [{"values": _embed(r)} for r in body.get("requests", [])]},
                {},
            )
        return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": method}}, {}

    def start(self) -> GeminiStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = _PATH.match(self.path.split("?")[0])
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                if match is None:
                    status, payload, extra = 404, {"error": {"code": 404, "message": self.path}}, {}
                else:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    status, payload, extra = standin.handle(
                        match["method"], match["model"], body, headers, self.path, raw
                    )
                streamed = match is not None and match["method"] == "streamGenerateContent"
                if streamed and status == 200:
                    return self._stream(payload)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, answer: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")  # the end of the body ends the stream
                self.end_headers()
                for chunk in stream_chunks(answer):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
                    self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


_STATUS = {
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    403: "PERMISSION_DENIED",
    401: "UNAUTHENTICATED",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
}
_EMBEDDER = HashingEmbedder(768)


def stream_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """An answer as streamGenerateContent sends it: a chunk per part, a text part in two halves;
    the last chunk carries the finish reason, the usage and the prompt feedback."""
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


def _candidate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "standin",
    }


def _embed(request: dict[str, Any]) -> list[float]:
    text = " ".join(p.get("text", "") for p in request.get("content", {}).get("parts", []))
    dims = int(request.get("outputDimensionality") or 768)
    return HashingEmbedder(dims).embed_one(text) if dims != 768 else _EMBEDDER.embed_one(text)


def _default_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A grounded answer: quotes the first context passage and cites it as [1]."""
    text = " ".join(p.get("text", "") for c in body["contents"] for p in c.get("parts", []))
    match = re.search(r'<source n="1"[^>]*>\n(.*?)\n</source>', text, re.S)
    if match:
        answer = f"Per the runbook: {match.group(1)[:160].strip()} [1]"
    else:
        answer = "I have no passages about that."
    return _candidate([{"text": answer}])

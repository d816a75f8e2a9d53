"""POST /v1/agent/infer/stream: the answer as Server-Sent Events, as it is written.

`delta` events carry the answer's text as it comes (from Gemini's own stream; an offline answer,
a fallback or a cache hit at once, a line at a time); one `done` event ends the stream with
exactly the JSON that /v1/agent/infer answers; an `error` event (the error body) ends it when
the answer fails part-way. Until the first piece of text, nothing is sent: a request that fails
before it gets its error as /v1/agent/infer does, with its status. A client that goes away
cancels the work (agent/api/cancellation.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from agent.api.deps import components_of
from agent.api.routes.infer import answer_body, check_query
from agent.api.schemas import InferRequest, errors
from agent.domain import Answer
from agent.llm.base import LLMError
from agent.service import AgentService, CachedAnswer
from agent.streaming import AnswerStream

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/agent", tags=["agent"])

Work = asyncio.Future[Answer | CachedAnswer]


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {"event": {"const": name}, "data": _data(data)},
    }


DELTA_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "description": "The next piece of the answer."}},
}
EVENTS = {
    "description": 'Server-Sent Events: `delta` events (`{"text"}`: the answer\'s text as it is '
    "written; joined, they are the answer), then one `done` event whose data is the JSON "
    "/v1/agent/infer answers, or an `error` event (the error body) when the answer fails "
    "part-way.",
    "content": {
        "text/event-stream": {
            # Each event, as OpenAPI 3.2 describes a stream's items (and FastAPI writes SSE):
            # its name, and its data's JSON (which schemathesis checks, test_contract.py).
            "itemSchema": {
                "oneOf": [
                    _event("delta", DELTA_SCHEMA),
                    _event("done", {"$ref": "#/components/schemas/InferResponse"}),
                    _event("error", {"$ref": "#/components/schemas/ErrorBody"}),
                ]
            },
        }
    },
}


@router.post(
    "/infer/stream",
    response_class=Response,
    responses={200: EVENTS, **errors(400, 401, 413, 422, 429, 431, 500, 502, 503, 504)},
)
async def infer_stream(body: InferRequest, request: Request) -> Response:
    """Answer a question as /v1/agent/infer does, streamed as Server-Sent Events."""
    started = time.perf_counter()
    components = components_of(request)
    check_query(body, components.settings)
    stream = AnswerStream(components.metrics, started)
    work = asyncio.ensure_future(_answer(components.service, body, stream))
    try:
        first = await stream.next()
        if first is None:
            await work  # ended before any text: a failure raises its error, with its status
    except BaseException:
        work.cancel()
        raise
    return AnswerEvents(stream, work, first, started, request.state.request_id, body)


async def _answer(
    service: AgentService, body: InferRequest, stream: AnswerStream
) -> Answer | CachedAnswer:
    try:
        return await service.answer(body.query, body.session_id, body.top_k, stream=stream)
    finally:
        stream.close()


class AnswerEvents(Response):
    """The event stream of one answer (an ASGI response that ends the work when it ends, for
    whatever reason, the client's going away included)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: AnswerStream,
        work: Work,
        first: str | None,
        started: float,
        request_id: str,
        body: InferRequest,
    ) -> None:
        # No body, so no Content-Length: the events are sent as they come (chunked).
        self.status_code, self.background = 200, None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._stream, self._work, self._first = stream, work, first
        self._started, self._request_id, self._session_id = started, request_id, body.session_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            piece = self._first
            while piece is not None:
                pieces = [piece, *self._stream.ready()]  # what is queued goes in one write
                events = b"".join(_sse("delta", json.dumps({"text": p})) for p in pieces)
                await send({"type": "http.response.body", "body": events, "more_body": True})
                piece = await self._stream.next()
            await send({"type": "http.response.body", "body": await self._end()})
        finally:
            self._work.cancel()

    async def _end(self) -> bytes:
        try:
            answer = await self._work
        except LLMError as exc:
            return _sse("error", self._error(exc.kind, str(exc)))
        except Exception:
            log.exception("the streamed answer failed")
            return _sse("error", self._error("internal_error", "internal error; see the logs"))
        return _sse(
            "done",
            answer_body(answer, self._started, self._request_id, self._session_id).decode(),
        )

    def _error(self, error: str, detail: str) -> str:
        return json.dumps({"detail": detail, "error": error, "request_id": self._request_id})


def _sse(event: str, data: str) -> bytes:
    # JSON has no raw newline, so the data is one `data:` line.
    return f"event: {event}\ndata: {data}\n\n".encode()

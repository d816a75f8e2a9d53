"""Gemini through its documented REST API (ai.google.dev/api): generateContent,
streamGenerateContent?alt=sse and batchEmbedContents, POSTed as JSON with the key in the
`x-goog-api-key` header, over one shared HTTP client (agent/llm/http.py: keep-alive connections,
httptools' parser); retries with backoff (tenacity) on 429/5xx and transport failures, and a
mapping of every failure onto the LLMError hierarchy.

The agent builds the JSON bodies and reads the answers itself rather than through google-genai's
typed layer, which turned each request into pydantic models and back into dicts, and each answer
into models again: about 1 ms of CPU per generate call and 0.6 ms per embedding call, the largest
share of the agent's CPU on a Gemini-backed request (docs/benchmarks.md). The requests are the
ones the SDK sends for the same inputs (path, bodies byte for byte, the API's headers), and the
answers are read as the SDK reads them: tests/agent/llm/test_gemini_wire.py sends the same inputs
both ways to a recording stand-in of the REST API and compares. Nothing here uses the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent import __version__
from agent.config import Settings
from agent.llm import http
from agent.llm.base import (
    Completion,
    LLMAuthError,
    LLMBadResponseError,
    LLMError,
    LLMRateLimitError,
    LLMTimeoutError,
    LLMUnavailableError,
    ToolCall,
)
from agent.llm.breaker import Breaker, BreakerPolicy, parse_retry_after, parse_retry_delay
from agent.llm.sse import json_events
from agent.metrics import Metrics
from agent.prompts import Prompt
from agent.tools import ToolContext, ToolRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_TOOL_ROUNDS = 3
TEMPERATURE = 0.2
# Connections to Gemini kept open. A request holds at most one at a time (the query embedding,
# then each generate round, one after the other), so the pool must be at least the number of
# requests a pod carries at once (100: docs/benchmarks.md, "Per-pod concurrency"); with httpx's
# default of 20 kept alive, the 21st concurrent call opened, and then closed, a connection.
POOL_CONNECTIONS = 128
KEEPALIVE_SECONDS = 30.0
_CITATION = re.compile(r"\[(\d{1,3})\]")
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
# The API's stable version, where google-genai sends its requests too.
API_VERSION = "v1"
USER_AGENT = f"vaia-agent/{__version__}"


class GeminiAPIError(Exception):
    """A non-2xx answer of the Gemini API: its HTTP status, the error object of its body (the
    API's `{"error": {"code", "message", "status", "details"}}`) and its headers."""

    def __init__(
        self, code: int, error: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self.code = code
        self.status = str(error.get("status") or "")
        self.message = str(error.get("message") or "")
        self.details: Any = error.get("details")
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(f"{code} {self.status}: {self.message}")


async def raise_for_status(response: http.Response) -> None:
    """GeminiAPIError for a non-2xx answer, with what its body says (read whole first)."""
    if response.is_success:
        return
    if not response.content:
        await response.aread()
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": response.text[:500], "status": response.reason_phrase}
    raise GeminiAPIError(response.status_code, error, response.headers)


def _is_retryable(exc: BaseException) -> bool:
    """Transient failures are retried inside the request; not a 429 (a spent quota: retrying
    spends the next minute's too) nor an answer that says when to come back: those open the
    model's breaker (agent/llm/breaker.py), which waits for them once for every request."""
    if isinstance(exc, GeminiAPIError):
        if exc.code == 429 or _retry_after(exc) is not None:
            return False
        return exc.code in RETRYABLE_STATUS
    return isinstance(exc, (http.TransportError, TimeoutError))


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _retry_after(exc: GeminiAPIError) -> float | None:
    """When Gemini said to come back: the Retry-After header (seconds or an HTTP date), else the
    RetryInfo of its error body (`retryDelay: "30s"`, what the Gemini API sends with a 429)."""
    seconds = parse_retry_after(exc.headers.get("retry-after"))
    if seconds is not None:
        return seconds
    details = exc.details
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            return parse_retry_delay(detail.get("retryDelay"))
    return None


def map_error(exc: BaseException) -> LLMError:
    """Translate the API's and the transport's exceptions into the provider-neutral hierarchy."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, GeminiAPIError):
        code = exc.code
        message = f"Gemini answered {code} {exc.status}: {exc.message}".strip()
        text = f"{exc.message} {exc.details}".upper()
        if code in (401, 403) or "API_KEY_INVALID" in text or "API KEY NOT VALID" in text:
            return LLMAuthError("Gemini rejected the API key (check GEMINI_API_KEY)")
        if code == 429:
            return LLMRateLimitError(message, retry_after=_retry_after(exc))
        if code in (408, 504):
            return LLMTimeoutError(message)
        if code >= 500:
            unavailable = LLMUnavailableError(message)
            unavailable.retry_after = _retry_after(exc)
            return unavailable
        return LLMBadResponseError(message)
    if isinstance(exc, TimeoutError):  # our deadline on the whole call (asyncio.timeout)
        return LLMTimeoutError(f"Gemini did not answer in time: {exc or 'deadline'}")
    if isinstance(exc, http.TransportError):
        return LLMUnavailableError(f"cannot reach Gemini: {type(exc).__name__}: {exc}")
    return LLMBadResponseError(f"unexpected Gemini failure: {type(exc).__name__}: {exc}")


class GeminiClient:
    """The REST API's client plus our retry policy; shared by the provider and the embedder."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        if settings.gemini_api_key is None:
            raise ValueError("the gemini provider needs GEMINI_API_KEY")
        self._settings = settings
        self._metrics = metrics
        timeout = settings.llm_timeout_seconds
        # No Connection header: HTTP/1.1 keeps connections alive by default, and the SDK's
        # requests carry none either (tests/agent/llm/test_gemini_wire.py).
        self._http = http.Client(
            f"{(settings.google_gemini_base_url or DEFAULT_BASE_URL).rstrip('/')}/{API_VERSION}/",
            {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
                "x-goog-api-key": settings.gemini_api_key.get_secret_value(),
                # Google APIs' system parameter: how long the server may take (whole seconds).
                "X-Server-Timeout": str(math.ceil(timeout)),
            },
            max_connections=POOL_CONNECTIONS,
            keepalive_s=KEEPALIVE_SECONDS,
            connect_timeout_s=timeout,
        )
        self._policy = BreakerPolicy(
            failures=settings.llm_breaker_failures,
            cooldown_s=settings.llm_breaker_cooldown_seconds,
            max_cooldown_s=settings.llm_breaker_max_cooldown_seconds,
            probes=settings.llm_breaker_probes,
        )
        self._breakers: dict[str, Breaker] = {}

    @property
    def timeout(self) -> float:
        """What bounds every call as a whole (its retries each), and each connect."""
        return self._settings.llm_timeout_seconds

    @property
    def http(self) -> http.Client:
        return self._http

    def breaker(self, model: str) -> Breaker:
        """The model's breaker: quotas are per model (generation's is not the embeddings')."""
        found = self._breakers.get(model)
        if found is None:
            found = self._breakers[model] = Breaker(model, self._policy, self._metrics)
        return found

    async def post(self, model: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to models/<model>:<method>, with our retries; the answer's JSON. Non-2xx
        answers raise GeminiAPIError, mapped to LLMError."""
        url = f"{model_path(model)}:{method}"
        deadline = self._settings.llm_timeout_seconds

        async def send() -> http.Response:
            # The whole attempt: an answer that trickles in would pass any bound on each read.
            async with asyncio.timeout(deadline):
                response = await self._http.post(url, json.dumps(body).encode())
                await raise_for_status(response)
            return response

        response = await self.call(send, model)
        try:
            data = json.loads(response.content) if response.content else {}
        except ValueError as exc:
            raise LLMBadResponseError(f"Gemini answered {method} with invalid JSON") from exc
        if not isinstance(data, dict):
            raise LLMBadResponseError(f"Gemini answered {method} with a JSON {type(data)}")
        return data

    async def stream(
        self, model: str, body: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """POST `body` to models/<model>:streamGenerateContent?alt=sse: the answer's chunks
        (GenerateContentResponse JSON, one Server-Sent Event each) as they come. Opening the
        stream is retried like any call; once a chunk came, nothing is (the client has seen it).
        The first chunk must come within LLM_TIMEOUT_SECONDS, each next one within
        LLM_STREAM_STALL_SECONDS; an error event raises LLMError."""
        s = self._settings
        url = f"{model_path(model)}:streamGenerateContent?alt=sse"
        content = json.dumps(body).encode()

        async def open_stream() -> http.Response:
            async with asyncio.timeout(s.llm_timeout_seconds):
                response = await self._http.send(url, content)
                try:
                    await raise_for_status(response)
                except BaseException:
                    await response.aclose()
                    raise
            return response

        permit = self.breaker(model).admit()
        try:
            response = await self._retried(open_stream)
            try:
                async with contextlib.aclosing(json_events(response.aiter_bytes())) as events:
                    wait, what = s.llm_timeout_seconds, "its first chunk"
                    while True:
                        try:
                            async with asyncio.timeout(wait):
                                event = await anext(events)
                        except StopAsyncIteration:
                            return
                        except TimeoutError as exc:
                            raise LLMTimeoutError(
                                f"Gemini's stream stalled: {what} did not come within {wait:g} s"
                            ) from exc
                        except http.TransportError as exc:
                            raise map_error(exc) from exc
                        if not isinstance(event, dict) or "error" in event:
                            raise _stream_error(event)
                        permit.succeeded()
                        yield event
                        wait, what = s.llm_stream_stall_seconds, "the next chunk"
            finally:
                await response.aclose()
        except LLMError as exc:
            permit.failed(exc)
            raise
        finally:
            permit.released()  # the reader stopped or was cancelled: no verdict

    async def call(self, operation: Callable[[], Awaitable[T]], model: str) -> T:
        """`operation` through the model's breaker, with our retries; failures as LLMError."""
        permit = self.breaker(model).admit()
        try:
            result = await self._retried(operation)
        except LLMError as exc:
            permit.failed(exc)
            raise
        except BaseException:
            permit.released()  # cancelled: no verdict on Gemini
            raise
        permit.succeeded()
        return result

    async def _retried(self, operation: Callable[[], Awaitable[T]]) -> T:
        s = self._settings

        def count_retry(state: RetryCallState) -> None:
            self._metrics.llm_retries.labels("gemini").inc()
            log.info("retrying Gemini call", extra={"attempt": state.attempt_number})

        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.llm_max_attempts),
            wait=wait_exponential_jitter(
                initial=s.llm_retry_initial_seconds, max=s.llm_retry_max_seconds
            ),
            retry=retry_if_exception(_is_retryable),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await operation()
        except Exception as exc:
            raise map_error(exc) from exc
        raise AssertionError("unreachable: tenacity re-raises after the last attempt")

    async def aclose(self) -> None:
        await self._http.aclose()


def _stream_error(event: object) -> LLMError:
    """An error event in a stream (`{"error": {...}}`): the error of a failed call."""
    if isinstance(event, dict) and isinstance(event.get("error"), dict):
        code = event["error"].get("code")
        error = GeminiAPIError(code if isinstance(code, int) else 500, event["error"])
        return map_error(error)
    return LLMBadResponseError(f"Gemini streamed an event that is not a JSON object: {event!r}")


def model_path(model: str) -> str:
    """A model name as a resource name of the API: `models/<name>` (a tuned model's as is)."""
    if not model or ".." in model or "?" in model or "&" in model:
        raise ValueError(f"invalid model name {model!r}")
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


# --- request bodies and answers, as the SDK builds and reads them ----------------------------


def text_content(role: str, text: str) -> dict[str, Any]:
    """`types.Content(role=role, parts=[types.Part(text=text)])` on the wire."""
    return {"parts": [{"text": text}], "role": role}


def tool_declarations(tools: ToolRegistry) -> list[dict[str, Any]]:
    """`[types.Tool(function_declarations=[...])]` on the wire, for a registry; computed once
    per registry (regenerating the JSON schemas took 11% of the agent's CPU under load)."""
    cached = _DECLARATIONS.get(tools)
    if cached is None or cached[0] != len(tools):
        declared = [
            {
                "description": tool.description,
                "name": tool.name,
                "parameters_json_schema": tool.json_schema(),
            }
            for tool in tools
        ]
        cached = (len(tools), [{"functionDeclarations": declared}] if declared else [])
        _DECLARATIONS[tools] = cached
    return cached[1]


_DECLARATIONS: weakref.WeakKeyDictionary[ToolRegistry, tuple[int, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def generate_body(
    contents: list[dict[str, Any]], system: dict[str, Any], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The generateContent body of `GenerateContentConfig(system_instruction=..., temperature=
    TEMPERATURE, tools=..., automatic_function_calling=disabled)`, which stays on the client."""
    body: dict[str, Any] = {"contents": contents, "systemInstruction": system}
    if tools:
        body["tools"] = tools
    body["generationConfig"] = _GENERATION_CONFIG
    return body


_GENERATION_CONFIG = {"temperature": TEMPERATURE}


def first_parts(answer: dict[str, Any]) -> list[dict[str, Any]]:
    candidates = answer.get("candidates") or []
    content = (candidates[0].get("content") if candidates else None) or {}
    parts: list[dict[str, Any]] = content.get("parts") or []
    return parts


def function_calls(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """`response.function_calls`: the first candidate's function calls."""
    return [p["functionCall"] for p in first_parts(answer) if p.get("functionCall") is not None]


def answer_text(answer: dict[str, Any]) -> str | None:
    """`response.text`: the first candidate's text parts that are not thoughts, joined; None
    when it has no text part."""
    texts = [
        p["text"]
        for p in first_parts(answer)
        if isinstance(p.get("text"), str) and p.get("thought") is not True
    ]
    return "".join(texts) if texts else None


def block_reason(answer: dict[str, Any]) -> str | None:
    feedback = answer.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    return str(reason) if reason is not None else None


class GeminiProvider:
    name: Literal["gemini"] = "gemini"
    uses_history = True

    def __init__(self, client: GeminiClient, model: str, metrics: Metrics) -> None:
        self._client = client
        self.model = model
        self._metrics = metrics

    async def complete(self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext) -> Completion:
        answer, calls = await self._rounds(prompt, tools, ctx, self._generate)
        return self._completion(answer_text(answer), answer, calls, ctx)

    async def complete_streaming(
        self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext, on_text: Callable[[str], None]
    ) -> Completion:
        """As `complete`, each round streamed (streamGenerateContent): `on_text` gets the text
        as it comes. The answer is all the text streamed, of every round, as the client saw it."""
        streamed: list[str] = []

        def write(text: str) -> None:
            streamed.append(text)
            on_text(text)

        async def generate(body: dict[str, Any]) -> dict[str, Any]:
            return await self._generate_streamed(body, write)

        answer, calls = await self._rounds(prompt, tools, ctx, generate)
        return self._completion("".join(streamed), answer, calls, ctx)

    async def _rounds(
        self,
        prompt: Prompt,
        tools: ToolRegistry,
        ctx: ToolContext,
        generate: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> tuple[dict[str, Any], list[ToolCall]]:
        """Generate, run the tools the model asks for and answer it, up to MAX_TOOL_ROUNDS; the
        last answer and the tool calls."""
        system = _system_instruction(prompt.system)
        declared = tool_declarations(tools)
        contents: list[dict[str, Any]] = [text_content("user", prompt.user_message())]
        calls: list[ToolCall] = []
        for _round in range(MAX_TOOL_ROUNDS + 1):
            answer = await generate(generate_body(contents, system, declared))
            requested = function_calls(answer)
            if not requested or _round == MAX_TOOL_ROUNDS:
                break
            candidates = answer.get("candidates") or []
            if candidates and candidates[0].get("content"):
                contents.append(candidates[0]["content"])
            reply_parts = []
            for fc in requested:
                name, args = fc.get("name") or "", dict(fc.get("args") or {})
                outcome = await tools.call(name, args, ctx)
                self._metrics.tool_calls.labels(name, "ok" if outcome.ok else "error").inc()
                calls.append(
                    ToolCall(name=name, arguments=args, result=outcome.result, ok=outcome.ok)
                )
                # `types.Part.from_function_response(name=name, response=result)`
                reply_parts.append({"functionResponse": {"name": name, "response": outcome.result}})
            contents.append({"parts": reply_parts, "role": "user"})
        return answer, calls

    def _completion(
        self, text: str | None, answer: dict[str, Any], calls: list[ToolCall], ctx: ToolContext
    ) -> Completion:
        text = (text or "").strip()
        if not text:
            reason = block_reason(answer)
            raise LLMBadResponseError(f"Gemini returned no text (block reason: {reason})")
        cited = sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(ctx.found)})
        return Completion(text=text, model=self.model, tool_calls=calls, cited=cited)

    async def _generate(self, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._client.post(self.model, "generateContent", body)
        except LLMError as exc:
            outcome = exc.kind
            raise
        finally:
            self._metrics.llm_latency.labels("gemini", outcome).observe(
                time.perf_counter() - started
            )

    async def _generate_streamed(
        self, body: dict[str, Any], write: Callable[[str], None]
    ) -> dict[str, Any]:
        """One round streamed: its text written as it comes; the round as one answer (every
        chunk's parts in order: text, function calls and their thought signatures)."""
        started = time.perf_counter()
        outcome = "ok"
        parts: list[dict[str, Any]] = []
        answer: dict[str, Any] = {}
        try:
            async with contextlib.aclosing(self._client.stream(self.model, body)) as chunks:
                async for chunk in chunks:
                    for part in first_parts(chunk):
                        parts.append(part)
                        text = part.get("text")
                        if isinstance(text, str) and text and part.get("thought") is not True:
                            write(text)
                    if chunk.get("promptFeedback"):
                        answer["promptFeedback"] = chunk["promptFeedback"]
        except LLMError as exc:
            outcome = exc.kind
            raise
        finally:
            self._metrics.llm_latency.labels("gemini", outcome).observe(
                time.perf_counter() - started
            )
        answer["candidates"] = [{"content": {"role": "model", "parts": parts}}] if parts else []
        return answer

    async def aclose(self) -> None:
        await self._client.aclose()


@functools.lru_cache(maxsize=8)
def _system_instruction(text: str) -> dict[str, Any]:
    # `system_instruction=<str>` becomes a user-role Content on the wire. Shared by every
    # request: never changed after this (the client only reads the bodies it sends).
    return text_content("user", text)

"""Gemini through google-genai: one shared client, retries with backoff (tenacity) on 429/5xx and
transport failures, and a mapping of every failure onto the LLMError hierarchy.

The requests carry what the SDK's API client makes of them (its URL, key and client headers,
timeout) and go through its httpx client, and every non-2xx answer raises the SDK's APIError;
but their JSON bodies are built here, and the answers read here, instead of by the SDK's typed
layer. That layer turned each request into pydantic models and back into dicts, and each answer
into models again: about 1 ms of CPU per generate call and 0.6 ms per embedding call, the largest
share of the agent's CPU on a Gemini-backed request (docs/benchmarks.md). The requests are those
the SDK sends for the same inputs, path, headers and body byte for byte, and the answers are read
as the SDK reads them: tests/agent/llm/test_gemini_wire.py sends the same inputs both ways to a
recording stand-in of the REST API and compares.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Literal, TypeVar

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.config import Settings
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
from agent.llm.pool import ShardedTransport
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
# In shards (agent/llm/pool.py says why).
POOL_CONNECTIONS = 128
KEEPALIVE_SECONDS = 30.0
_CITATION = re.compile(r"\[(\d{1,3})\]")
# httpx2 (the SDK's own default) is a fork of httpx under another name: its errors are not
# httpx's. Both are mapped, whichever client sends.
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)
TIMEOUT_ERRORS = (httpx.TimeoutException, httpx2.TimeoutException)


def _is_retryable(exc: BaseException) -> bool:
    """Transient failures are retried inside the request; not a 429 (a spent quota: retrying
    spends the next minute's too) nor an answer that says when to come back: those open the
    model's breaker (agent/llm/breaker.py), which waits for them once for every request."""
    if isinstance(exc, genai_errors.APIError):
        if exc.code == 429 or _retry_after(exc) is not None:
            return False
        return exc.code in RETRYABLE_STATUS
    return isinstance(exc, (*TRANSPORT_ERRORS, TimeoutError))


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """When Gemini said to come back: the Retry-After header (seconds or an HTTP date), else the
    RetryInfo of its error body (`retryDelay: "30s"`, what the Gemini API sends with a 429)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    seconds = parse_retry_after(headers.get("retry-after") if headers is not None else None)
    if seconds is not None:
        return seconds
    details = exc.details.get("error", {}).get("details") if isinstance(exc.details, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            return parse_retry_delay(detail.get("retryDelay"))
    return None


def map_error(exc: BaseException) -> LLMError:
    """Translate SDK and transport exceptions into the provider-neutral hierarchy."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        code = exc.code or 0
        message = f"Gemini answered {code} {exc.status or ''}: {exc.message or ''}".strip()
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
    if isinstance(exc, TIMEOUT_ERRORS):
        return LLMTimeoutError(f"Gemini did not answer in time ({type(exc).__name__})")
    if isinstance(exc, TimeoutError):  # our deadline on the whole call (asyncio.timeout)
        return LLMTimeoutError(f"Gemini did not answer in time: {exc or 'deadline'}")
    if isinstance(exc, TRANSPORT_ERRORS):
        return LLMUnavailableError(f"cannot reach Gemini: {type(exc).__name__}: {exc}")
    return LLMBadResponseError(f"unexpected Gemini failure: {type(exc).__name__}: {exc}")


class GeminiClient:
    """The google-genai client plus our retry policy; shared by the provider and the embedder."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        if settings.gemini_api_key is None:
            raise ValueError("the gemini provider needs GEMINI_API_KEY")
        self._settings = settings
        self._metrics = metrics
        # Our own httpx2 client (the SDK's default library): the SDK then always takes its httpx
        # path (never aiohttp), with our pool; and the SDK's own retries stay off (attempts=1)
        # so that tenacity below owns the policy.
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(settings.llm_timeout_seconds),
            transport=ShardedTransport(POOL_CONNECTIONS, keepalive_expiry=KEEPALIVE_SECONDS),
        )
        self.client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=settings.google_gemini_base_url,
                timeout=int(settings.llm_timeout_seconds * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=self._http,
            ),
        )
        # The SDK's API client: what the typed methods of `client.aio.models` hand their request
        # dicts to (see the module docstring and `_prepared`).
        self._api = self.client.aio._api_client
        self._requests: dict[str, tuple[str, dict[str, str], float | None]] = {}
        self._policy = BreakerPolicy(
            failures=settings.llm_breaker_failures,
            cooldown_s=settings.llm_breaker_cooldown_seconds,
            max_cooldown_s=settings.llm_breaker_max_cooldown_seconds,
            probes=settings.llm_breaker_probes,
        )
        self._breakers: dict[str, Breaker] = {}

    def breaker(self, model: str) -> Breaker:
        """The model's breaker: quotas are per model (generation's is not the embeddings')."""
        found = self._breakers.get(model)
        if found is None:
            found = self._breakers[model] = Breaker(model, self._policy, self._metrics)
        return found

    async def post(self, model: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to models/<model>:<method> as the SDK's API client sends it, with our
        retries; the answer's JSON. Non-2xx answers raise the SDK's APIError (its own
        `raise_for_async_response`), mapped to LLMError."""
        url, headers, timeout = self._prepared(f"{model_path(model)}:{method}")
        deadline = self._settings.llm_timeout_seconds

        async def send() -> httpx2.Response:
            # httpx's timeout bounds each read, not the call: an answer that trickles in never
            # ends by it. This bounds the whole attempt.
            async with asyncio.timeout(deadline):
                response = await self._http.request(
                    "POST",
                    url,
                    headers=headers,
                    content=json.dumps(body).encode(),
                    timeout=timeout,
                )
                await genai_errors.APIError.raise_for_async_response(response)
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
        """POST `body` to models/<model>:streamGenerateContent?alt=sse, as the SDK's
        `generate_content_stream` sends it: the answer's chunks (GenerateContentResponse JSON)
        as they come. Opening the stream is retried like any call; once a chunk came, nothing
        is (the client has seen it). The first chunk must come within LLM_TIMEOUT_SECONDS,
        each next one within LLM_STREAM_STALL_SECONDS; an error event raises LLMError."""
        s = self._settings
        url, headers, timeout = self._prepared(f"{model_path(model)}:streamGenerateContent?alt=sse")
        content = json.dumps(body).encode()

        async def open_stream() -> httpx2.Response:
            async with asyncio.timeout(s.llm_timeout_seconds):
                request = self._http.build_request(
                    "POST", url, headers=headers, content=content, timeout=timeout
                )
                response = await self._http.send(request, stream=True)
                try:
                    await genai_errors.APIError.raise_for_async_response(response)
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
                        except (*TRANSPORT_ERRORS,) as exc:
                            raise map_error(exc) from exc
                        if not isinstance(event, dict) or "error" in event:
                            raise _stream_error(event, response)
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

    def _prepared(self, path: str) -> tuple[str, dict[str, str], float | None]:
        """The URL, headers and timeout the SDK's API client gives a request to `path`, made by
        the API client itself once per path. Its per-call path (building them again, its own
        retry wrapper, two response objects) cost 0.15 ms a call; the rest of the send is
        `_async_request_once`'s: the same client call, then APIError on a non-2xx answer."""
        prepared = self._requests.get(path)
        if prepared is None:
            request = self._api._build_request("post", path, {}, None)
            url = self._api._httpx_url(request.url, is_async=True)
            prepared = self._requests[path] = (url, dict(request.headers), request.timeout)
        return prepared

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


def _stream_error(event: object, response: httpx2.Response) -> LLMError:
    """An error event in a stream (`{"error": {...}}`), as the SDK raises it."""
    if isinstance(event, dict) and isinstance(event.get("error"), dict):
        code = event["error"].get("code")
        return map_error(genai_errors.APIError(code if isinstance(code, int) else 500, event))
    return LLMBadResponseError(f"Gemini streamed an event that is not a JSON object: {event!r}")


def model_path(model: str) -> str:
    """What the SDK makes of a model name on the Gemini API (`t_model`)."""
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
    # request: never changed after this (the SDK's client only reads the bodies it sends).
    return text_content("user", text)

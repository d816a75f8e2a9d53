"""Gemini through google-genai: one shared client, retries with backoff (tenacity) on 429/5xx and
transport failures, and a mapping of every failure onto the LLMError hierarchy."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import httpx
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
from agent.metrics import Metrics
from agent.prompts import Prompt
from agent.tools import ToolContext, ToolRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_TOOL_ROUNDS = 3
_CITATION = re.compile(r"\[(\d{1,3})\]")


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return exc.code in RETRYABLE_STATUS
    return isinstance(exc, httpx.TransportError)


def _retry_after(exc: genai_errors.APIError) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
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
            return LLMUnavailableError(message)
        return LLMBadResponseError(message)
    if isinstance(exc, httpx.TimeoutException):
        return LLMTimeoutError(f"Gemini did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return LLMUnavailableError(f"cannot reach Gemini: {type(exc).__name__}: {exc}")
    return LLMBadResponseError(f"unexpected Gemini failure: {type(exc).__name__}: {exc}")


class GeminiClient:
    """The google-genai client plus our retry policy; shared by the provider and the embedder."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        if settings.gemini_api_key is None:
            raise ValueError("the gemini provider needs GEMINI_API_KEY")
        self._settings = settings
        self._metrics = metrics
        # Our own httpx client: the SDK then always takes its httpx path (never aiohttp), and
        # the SDK's own retries stay off (attempts=1) so that tenacity below owns the policy.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(settings.llm_timeout_seconds))
        self.client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=settings.google_gemini_base_url,
                timeout=int(settings.llm_timeout_seconds * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=self._http,
            ),
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
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


class GeminiProvider:
    name: Literal["gemini"] = "gemini"
    uses_history = True

    def __init__(self, client: GeminiClient, model: str, metrics: Metrics) -> None:
        self._client = client
        self.model = model
        self._metrics = metrics

    async def complete(self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext) -> Completion:
        config = types.GenerateContentConfig(
            system_instruction=prompt.system,
            temperature=0.2,
            tools=[_declarations(tools)] if len(tools) else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        contents: list[types.Content] = [
            types.Content(role="user", parts=[types.Part(text=prompt.user_message())])
        ]
        calls: list[ToolCall] = []
        for _round in range(MAX_TOOL_ROUNDS + 1):
            response = await self._generate(contents, config)
            function_calls = response.function_calls or []
            if not function_calls or _round == MAX_TOOL_ROUNDS:
                break
            if response.candidates and response.candidates[0].content:
                contents.append(response.candidates[0].content)
            reply_parts = []
            for fc in function_calls:
                name, args = fc.name or "", dict(fc.args or {})
                outcome = await tools.call(name, args, ctx)
                self._metrics.tool_calls.labels(name, "ok" if outcome.ok else "error").inc()
                calls.append(
                    ToolCall(name=name, arguments=args, result=outcome.result, ok=outcome.ok)
                )
                reply_parts.append(
                    types.Part.from_function_response(name=name, response=outcome.result)
                )
            contents.append(types.Content(role="user", parts=reply_parts))
        text = (response.text or "").strip()
        if not text:
            feedback = response.prompt_feedback
            reason = feedback.block_reason if feedback else None
            raise LLMBadResponseError(f"Gemini returned no text (block reason: {reason})")
        cited = sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(ctx.found)})
        return Completion(text=text, model=self.model, tool_calls=calls, cited=cited)

    async def _generate(
        self, contents: list[types.Content], config: types.GenerateContentConfig
    ) -> types.GenerateContentResponse:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._client.call(
                lambda: self._client.client.aio.models.generate_content(
                    model=self.model, contents=contents, config=config
                )
            )
        except LLMError as exc:
            outcome = exc.kind
            raise
        finally:
            self._metrics.llm_latency.labels("gemini", outcome).observe(
                time.perf_counter() - started
            )

    async def aclose(self) -> None:
        await self._client.aclose()


def _declarations(tools: ToolRegistry) -> types.Tool:
    return types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name=tool.name,
                description=tool.description,
                parameters_json_schema=tool.json_schema(),
            )
            for tool in tools
        ]
    )

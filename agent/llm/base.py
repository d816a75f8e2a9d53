from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from agent.domain import ToolCall
from agent.prompts import Prompt
from agent.tools import ToolContext, ToolRegistry

__all__ = ["Completion", "LLMError", "LLMProvider", "StreamingProvider", "ToolCall"]


@dataclass
class Completion:
    text: str
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Passage numbers ([1], [2], ...) of the prompt's context that the answer relies on.
    cited: list[int] = field(default_factory=list)


class LLMError(RuntimeError):
    """Base of all provider errors. `status` is the HTTP status the API should answer with."""

    status = 502
    kind = "llm_error"
    retry_after: float | None = None


class LLMAuthError(LLMError):
    kind = "llm_auth"  # a key that the provider rejects is an operator problem, not a client one


class LLMRateLimitError(LLMError):
    status = 503
    kind = "llm_rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMUnavailableError(LLMError):
    status = 503
    kind = "llm_unavailable"


class LLMTimeoutError(LLMError):
    status = 504
    kind = "llm_timeout"


class LLMBadResponseError(LLMError):
    kind = "llm_bad_response"  # blocked by safety filters, empty candidates, malformed output


class LLMProvider(Protocol):
    @property
    def name(self) -> Literal["gemini", "offline"]: ...

    @property
    def model(self) -> str: ...

    @property
    def uses_history(self) -> bool:
        """Whether the answer depends on session history (then the cache key includes it)."""
        ...

    async def complete(self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext) -> Completion:
        """Answer the prompt. `ctx.found` starts as the prompt's passages; tools may add to it,
        and `Completion.cited` numbers index into it."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingProvider(Protocol):
    """A provider that can give its answer's text as it is written (Gemini). The others answer
    whole, and their answer is streamed once it is complete (agent/streaming.py)."""

    async def complete_streaming(
        self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext, on_text: Callable[[str], None]
    ) -> Completion:
        """As `complete`; `on_text` gets each piece of the answer's text as it comes, and the
        Completion's text is those pieces joined (stripped)."""
        ...

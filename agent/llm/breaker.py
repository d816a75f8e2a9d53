"""A circuit breaker per Gemini model, per process: a spent quota is asked again only when it
said it would be back.

Closed, every call goes out. A 429 (or a 503 that says when to come back) opens it at once, for
its `Retry-After` (seconds, an HTTP date, or the RetryInfo delay of Gemini's error body), or,
without one, for a backoff that doubles with each opening in a row (LLM_BREAKER_COOLDOWN_SECONDS
up to LLM_BREAKER_MAX_COOLDOWN_SECONDS); LLM_BREAKER_FAILURES other outages in a row (5xx,
timeouts, unreachable, after their retries) open it too. While open, calls are refused before
anything is sent (the agent answers offline, degraded). When the cooldown is over it is half-open:
LLM_BREAKER_PROBES calls at a time go out as probes, the others are still refused; a probe that
succeeds closes it, one that fails opens it again. Errors that are not about Gemini's capacity
(a rejected key, a bad request) pass through without changing anything, and so does a call
cancelled by its client. As LiteLLM's router cools a deployment down after a 429.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import IntEnum

from agent.llm.base import LLMError, LLMRateLimitError, LLMTimeoutError, LLMUnavailableError
from agent.metrics import Metrics

log = logging.getLogger(__name__)


class State(IntEnum):
    """The values of the vaia_llm_breaker_state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 3  # outages in a row (after retries) that open the breaker
    cooldown_s: float = 2.0  # the first cooldown without a Retry-After
    max_cooldown_s: float = 60.0  # no cooldown is longer, Retry-After included
    probes: int = 1  # calls at a time while half-open


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds, or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no value


def parse_retry_delay(value: object) -> float | None:
    """Seconds from google.rpc.RetryInfo's `retryDelay` as JSON gives it ("30s", "1.5s")."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


class Breaker:
    def __init__(
        self,
        model: str,
        policy: BreakerPolicy,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.policy = policy
        self._clock = clock
        self._state = State.CLOSED
        self._until = 0.0  # while open: when the cooldown ends
        self._failures = 0  # outages in a row while closed
        self._openings = 0  # openings in a row without a success: the backoff's exponent
        self._probing = 0
        self._rate_limited = False  # what opened it: a 429, or another outage
        self._rejected = metrics.breaker_rejected.labels(model)
        self._opened = metrics.breaker_opened.labels(model)
        metrics.breaker_state.labels(model).set_function(lambda: float(self.state))

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() >= self._until:
            return State.HALF_OPEN
        return self._state

    def remaining(self) -> float:
        """Seconds left of the cooldown (0 when not open)."""
        return max(0.0, self._until - self._clock()) if self.state is State.OPEN else 0.0

    def admit(self) -> Permit:
        """A permit to call Gemini, or the error the call would have ended with (so the agent
        answers offline); the permit reports how the call ended."""
        state = self.state
        if state is State.CLOSED:
            return Permit(self, probe=False)
        if state is State.HALF_OPEN and self._probing < self.policy.probes:
            self._state = State.HALF_OPEN
            self._probing += 1
            return Permit(self, probe=True)
        self._rejected.inc()
        wait = max(1.0, self.remaining())
        message = (
            f"Gemini ({self.model}) is cooling down for {wait:.0f} s after "
            f"{'a spent quota (429)' if self._rate_limited else 'failures'}; not called"
        )
        error: LLMError = (
            LLMRateLimitError(message, retry_after=wait)
            if self._rate_limited
            else LLMUnavailableError(message)
        )
        error.retry_after = wait
        raise error

    # --- what a permit reports ----------------------------------------------------------

    def _succeeded(self, probe: bool) -> None:
        if probe:
            self._probing -= 1
        if self._state is not State.CLOSED:
            log.info("Gemini answers again: breaker closed", extra={"model": self.model})
        self._state, self._failures, self._openings = State.CLOSED, 0, 0

    def _failed(self, error: LLMError, probe: bool) -> None:
        if probe:
            self._probing -= 1
        elif self._state is not State.CLOSED:
            return  # admitted before another call opened the breaker: nothing new
        if isinstance(error, LLMRateLimitError) or error.retry_after is not None:
            self._open(error.retry_after, rate_limited=isinstance(error, LLMRateLimitError))
        elif isinstance(error, LLMUnavailableError | LLMTimeoutError):
            self._failures += 1
            if probe or self._failures >= self.policy.failures:
                self._open(None, rate_limited=False)
        elif probe:  # a probe that ended otherwise (a bad answer): let another one try
            self._state = State.OPEN

    def _released(self, probe: bool) -> None:
        """The call ended without a verdict (cancelled by its client)."""
        if probe:
            self._probing -= 1

    def _open(self, retry_after: float | None, rate_limited: bool) -> None:
        self._openings += 1
        backoff = self.policy.cooldown_s * 2 ** (self._openings - 1)
        cooldown = min(self.policy.max_cooldown_s, backoff if retry_after is None else retry_after)
        self._state, self._until = State.OPEN, self._clock() + cooldown
        self._failures, self._rate_limited = 0, rate_limited
        self._opened.inc()
        log.warning(
            "Gemini breaker open",
            extra={"model": self.model, "cooldown_s": round(cooldown, 2), "quota": rate_limited},
        )


@dataclass
class Permit:
    """One admitted call; exactly one of its methods is called when the call ends."""

    breaker: Breaker
    probe: bool
    _done: bool = False

    def succeeded(self) -> None:
        if not self._end():
            self.breaker._succeeded(self.probe)

    def failed(self, error: LLMError) -> None:
        if not self._end():
            self.breaker._failed(error, self.probe)

    def released(self) -> None:
        if not self._end():
            self.breaker._released(self.probe)

    def _end(self) -> bool:
        done, self._done = self._done, True
        return done

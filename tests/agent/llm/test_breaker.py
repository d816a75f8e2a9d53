"""The circuit breaker's states on a clock the test moves (its use against a real quota-spent
Gemini stand-in: test_breaker_serving.py)."""

import pytest

from agent.llm.base import LLMAuthError, LLMRateLimitError, LLMTimeoutError, LLMUnavailableError
from agent.llm.breaker import (
    Breaker,
    BreakerPolicy,
    State,
    parse_retry_after,
    parse_retry_delay,
)
from agent.metrics import Metrics

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, **policy) -> tuple[Breaker, Metrics]:
    metrics = Metrics()
    return Breaker("m", BreakerPolicy(**policy), metrics, clock), metrics


def gauge(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("vaia_llm_breaker_state", {"model": "m"})


def rejected(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("vaia_llm_breaker_rejected_total", {"model": "m"})


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now=now) == 0.0  # past: at once
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    assert parse_retry_delay("37s") == 37.0 and parse_retry_delay("0.5s") == 0.5
    assert parse_retry_delay("37") is None and parse_retry_delay(37) is None


def test_a_429_opens_it_for_its_retry_after_and_one_probe_closes_it(clock) -> None:
    b, metrics = breaker(clock)
    b.admit().failed(LLMRateLimitError("quota", retry_after=30))
    assert b.state is State.OPEN and gauge(metrics) == 2
    with pytest.raises(LLMRateLimitError) as refused:
        b.admit()
    assert refused.value.retry_after == 30 and "not called" in str(refused.value)
    clock.now += 29.5
    with pytest.raises(LLMRateLimitError):
        b.admit()
    assert rejected(metrics) == 2
    clock.now += 0.5
    assert b.state is State.HALF_OPEN and gauge(metrics) == 1
    probe = b.admit()
    with pytest.raises(LLMRateLimitError):  # one probe at a time
        b.admit()
    probe.succeeded()
    assert b.state is State.CLOSED and gauge(metrics) == 0
    b.admit().succeeded()


def test_without_retry_after_the_cooldown_doubles_up_to_its_maximum(clock) -> None:
    b, _ = breaker(clock, cooldown_s=2, max_cooldown_s=10)
    cooldowns = []
    b.admit().failed(LLMRateLimitError("quota"))
    for _ in range(4):
        cooldowns.append(b.remaining())
        clock.now += b.remaining()
        b.admit().failed(LLMRateLimitError("quota"))  # the probe fails
    assert cooldowns == [2, 4, 8, 10]
    clock.now += 10
    b.admit().succeeded()
    b.admit().failed(LLMRateLimitError("quota"))
    assert b.remaining() == 2  # a success starts the backoff over


def test_other_outages_open_it_after_some_in_a_row(clock) -> None:
    b, _ = breaker(clock, failures=3)
    b.admit().failed(LLMUnavailableError("503"))
    b.admit().failed(LLMTimeoutError("slow"))
    b.admit().succeeded()  # not in a row
    b.admit().failed(LLMUnavailableError("503"))
    b.admit().failed(LLMUnavailableError("503"))
    assert b.state is State.CLOSED
    b.admit().failed(LLMUnavailableError("503"))
    assert b.state is State.OPEN
    with pytest.raises(LLMUnavailableError):  # refused as what it is: not a quota
        b.admit()


def test_a_503_with_retry_after_opens_it_at_once(clock) -> None:
    b, _ = breaker(clock)
    error = LLMUnavailableError("overloaded")
    error.retry_after = 12
    b.admit().failed(error)
    assert b.state is State.OPEN and b.remaining() == 12


def test_errors_that_are_not_about_capacity_change_nothing(clock) -> None:
    b, _ = breaker(clock, failures=1)
    b.admit().failed(LLMAuthError("bad key"))
    assert b.state is State.CLOSED


def test_calls_admitted_before_it_opened_do_not_stretch_the_cooldown(clock) -> None:
    b, _ = breaker(clock, cooldown_s=2)
    in_flight = [b.admit() for _ in range(10)]
    for permit in in_flight:
        permit.failed(LLMRateLimitError("quota"))
    assert b.remaining() == 2


def test_a_cancelled_probe_lets_the_next_call_probe(clock) -> None:
    b, _ = breaker(clock)
    b.admit().failed(LLMRateLimitError("quota", retry_after=1))
    clock.now += 1
    probe = b.admit()
    probe.released()
    probe.failed(LLMRateLimitError("quota"))  # a permit reports once
    b.admit().succeeded()
    assert b.state is State.CLOSED

"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets sized for an API whose fast path is a few milliseconds and whose LLM path is seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# OpenTelemetry's advice for gen_ai.server.time_to_first_token and time_per_output_token.
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10)
_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "vaia_http_requests_total", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "vaia_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_latency = Histogram(
            "vaia_llm_request_duration_seconds",
            "LLM call latency, by provider and outcome.",
            ["provider", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # OpenTelemetry's GenAI server metrics, in Prometheus' style; chunks, not tokens: the
        # agent streams what Gemini sends, a chunk at a time.
        self.time_to_first_token = Histogram(
            "vaia_gen_ai_server_time_to_first_token_seconds",
            "Streamed answers: from the request to the first text sent to the client "
            "(gen_ai.server.time_to_first_token), by where the text came from "
            "(gemini, offline, cache).",
            ["provider"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.time_per_output_chunk = Histogram(
            "vaia_gen_ai_server_time_per_output_chunk_seconds",
            "Streamed answers: time between two pieces of text sent to the client "
            "(gen_ai.server.time_per_output_token, per chunk), by provider.",
            ["provider"],
            buckets=_CHUNK_BUCKETS,
            registry=r,
        )
        self.llm_retries = Counter(
            "vaia_llm_retries_total", "LLM calls retried after 5xx.", ["provider"], registry=r
        )
        self.breaker_state = Gauge(
            "vaia_llm_breaker_state",
            "Gemini circuit breaker per model: 0 closed, 1 half-open (probing), 2 open.",
            ["model"],
            registry=r,
        )
        self.breaker_rejected = Counter(
            "vaia_llm_breaker_rejected_total",
            "Gemini calls not sent because the model's breaker was open (answered offline).",
            ["model"],
            registry=r,
        )
        self.breaker_opened = Counter(
            "vaia_llm_breaker_opened_total",
            "Times a model's breaker opened (a 429, a Retry-After, or repeated outages).",
            ["model"],
            registry=r,
        )
        self.cache_requests = Counter(
            "vaia_cache_requests_total",
            "Response cache look-ups: hit, miss, or error (backend down).",
            ["result"],
            registry=r,
        )
        self.retrieval_latency = Histogram(
            "vaia_retrieval_duration_seconds",
            "Knowledge retrieval latency (embedding + vector query).",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dependency_up = Gauge(
            "vaia_dependency_up",
            "1 when the dependency answered its last call, 0 when it failed.",
            ["dependency"],
            registry=r,
        )
        self.degraded_answers = Counter(
            "vaia_degraded_answers_total",
            "Answers given in a degraded mode.",
            ["reason"],
            registry=r,
        )
        self.not_covered_answers = Counter(
            "vaia_not_covered_answers_total",
            "Questions no runbook passage answered (below the relevance floor): gaps to fill.",
            registry=r,
        )
        self.inflight_requests = Gauge(
            "vaia_inflight_requests",
            "Inference requests in flight in this process (MAX_INFLIGHT_REQUESTS is the limit).",
            registry=r,
        )
        self.requests_shed = Counter(
            "vaia_requests_shed_total",
            "Inference requests refused with 503 because MAX_INFLIGHT_REQUESTS were in flight.",
            ["route"],
            registry=r,
        )
        self.requests_cancelled = Counter(
            "vaia_requests_cancelled_total",
            "Requests whose client went away before the answer was complete: their work was "
            "cancelled (the Gemini call in flight included) and nothing of it was cached.",
            ["route"],
            registry=r,
        )
        self.rate_limited = Counter(
            "vaia_rate_limited_total", "Requests refused by the rate limit.", registry=r
        )
        self.tool_calls = Counter(
            "vaia_tool_calls_total", "Tool invocations.", ["tool", "outcome"], registry=r
        )
        self.ingested_chunks = Counter(
            "vaia_ingested_chunks_total", "Chunks written to the knowledge store.", registry=r
        )

"""A realistic, weighted mix of VAIA traffic for `invoke loadtest` (headless locust).

- popular questions, asked again and again (cache hits)
- unique questions (cache misses: retrieval + answer)
- multi-turn sessions (session memory)
- streamed answers (Server-Sent Events), timed to their first piece of text
- rare document ingestion
- health checks, as probes and load balancers send them
An infer response without an answer is a failure, not only a non-2xx status. A 503 `overloaded`
(the agent shedding load past MAX_INFLIGHT_REQUESTS) is a failure reported as `shed`, which the
verdict counts apart from the service's errors, as it does 429s.

A streamed answer is one request (`infer: stream`, timed to its `done` event); its time to first
token is logged to an entry of its own (`TTFT_NAME`, type `TTFT`) but not to the aggregate, so
the verdict's request count, failures and p95 stay those of requests.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid

from locust import HttpUser, between, task

STREAM_NAME = "infer: stream"
TTFT_NAME = "infer: stream (time to first token)"

POPULAR = [
    "How do I roll back a Deployment?",
    "Why is my HPA not scaling?",
    "What are SEV1 incidents?",
    "How do I check the rollout history?",
    "What should I watch after a deploy?",
    "What port does the agent listen on?",
    "How do I write a postmortem?",
    "What is the error budget of a 99.9% SLO over 30 days?",
]
TOPICS = [
    "canary",
    "readiness probe",
    "p95 latency",
    "metrics-server",
    "ReplicaSet",
    "status page",
    "burn rate",
    "maxSurge",
    "Redis",
    "ChromaDB",
    "incident commander",
    "rollback",
]
FOLLOW_UPS = ["and how do I verify it?", "what if that fails?", "who should I tell?"]
_counter = itertools.count()


def refusal(response) -> str:  # type: ignore[no-untyped-def]
    """Why a non-200 failed, as the verdict reads it: `status 503 (shed)` for load shedding."""
    if response.status_code == 503:
        try:
            shed = response.json().get("error") == "overloaded"
        except ValueError:
            shed = False
        if shed:
            return "status 503 (shed)"
    return f"status {response.status_code}"


def check_answer(response) -> None:  # type: ignore[no-untyped-def]
    """Fail the request unless it is a 200 with a non-empty answer."""
    if response.status_code != 200:
        response.failure(refusal(response))
        return
    try:
        answer = response.json().get("answer", "")
    except ValueError:
        response.failure("not JSON")
        return
    if not answer.strip():
        response.failure("no answer")
    else:
        response.success()


class AgentUser(HttpUser):
    wait_time = between(0.05, 0.3)

    def ask(self, query: str, name: str, session_id: str | None = None) -> None:
        body = {"query": query, **({"session_id": session_id} if session_id else {})}
        with self.client.post(
            "/v1/agent/infer", json=body, name=name, catch_response=True
        ) as response:
            check_answer(response)

    @task(10)
    def popular_question(self) -> None:
        self.ask(random.choice(POPULAR), "infer: popular (cache hit)")

    @task(6)
    def unique_question(self) -> None:
        case = f"{next(_counter)}-{uuid.uuid4().hex[:6]}"
        self.ask(
            f"How does {random.choice(TOPICS)} relate to case {case}?", "infer: unique (cache miss)"
        )

    @task(4)
    def streamed_question(self) -> None:
        """A unique question to the streaming endpoint: TTFT is the first `delta` event."""
        body = {"query": f"What should I check before a {random.choice(TOPICS)} change?"}
        body["query"] += f" (case {next(_counter)}-{uuid.uuid4().hex[:6]})"
        started = time.perf_counter()
        first: float | None = None
        with self.client.post(
            "/v1/agent/infer/stream", json=body, name=STREAM_NAME, stream=True, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(refusal(response))
                return
            event, answer = "", None
            for line in response.iter_lines():
                if line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"data: "):
                    if event == "delta" and first is None:
                        first = time.perf_counter() - started
                    elif event in ("done", "error"):
                        answer = (event, json.loads(line[6:]))
            # locust timed the response headers; the request ends with its last event.
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            if answer is None:
                response.failure("stream ended without a done event")
            elif answer[0] == "error":
                response.failure(f"error event {answer[1].get('error')}")
            elif not str(answer[1].get("answer", "")).strip():
                response.failure("no answer")
            else:
                response.success()
        if first is not None:
            self.environment.stats.get(TTFT_NAME, "TTFT").log(first * 1000, 0)

    @task(3)
    def conversation(self) -> None:
        session = f"load-{uuid.uuid4().hex[:12]}"
        self.ask(random.choice(POPULAR), "infer: session", session)
        for follow_up in random.sample(FOLLOW_UPS, k=2):
            self.ask(follow_up, "infer: session", session)

    @task(1)
    def ingest(self) -> None:
        doc_id = f"load-doc-{uuid.uuid4().hex[:10]}"
        document = {
            "id": doc_id,
            "title": "Load test note",
            "text": f"## Note\n\nThe load test wrote {doc_id} to check ingestion under load.",
        }
        with self.client.post(
            "/v1/knowledge/documents",
            json={"documents": [document]},
            name="ingest",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(refusal(response))

    @task(2)
    def health(self) -> None:
        self.client.get("/health", name="health")

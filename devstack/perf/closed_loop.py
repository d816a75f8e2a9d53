"""A locustfile: a closed loop of clients, for `invoke bench --serving` (the overload) and the
streaming row of `--gemini`, run by devstack/perf/loadtest.py like the load test's own.

Each client asks a question no one asked before (a cache miss), waits for the answer and asks
again at once; a refusal (503 or 429) waits its `Retry-After`, as a well-behaved client does.
`Asker` asks /v1/agent/infer (locust's FastHttpUser: hundreds of them cost the shared cores
little); `StreamAsker` the streaming endpoint, reading its Server-Sent Events as they come.

Locust's entries, by name: `answered` (a 200: its latency, a stream's to its `done` event),
`refused` (a 503 or 429: how long the refusal took), `no answer` (failures: no HTTP answer, another
status, a stream that ended in an `error` event) and `first token` (a stream's first `delta`
event; not a request, so not in the aggregate).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from locust import FastHttpUser, HttpUser, constant, task

from devstack.perf.clients import ANSWERED, FIRST_TOKEN, INFER, NO_ANSWER, REFUSED, STREAM
from devstack.perf.clients import question as unique_question

TIMEOUT_S = 60.0  # an answer slower than this counts as none
_SEED = secrets.token_hex(3)


def question() -> dict[str, str]:
    """A question no one asked before (a cache miss), as an infer body."""
    return unique_question(_SEED)


def retry_after(response: Any) -> float:
    try:
        return float(response.headers.get("retry-after") or 1)
    except ValueError:
        return 1.0


def sort_refusal(reply: Any) -> float:
    """Name a refusal (503 or 429) or another status as such; how long to wait before asking
    again (a refusal's Retry-After, else nothing). A 200 is left to the caller."""
    if reply.status_code in (429, 503):
        reply.request_meta["name"] = REFUSED
        reply.success()
        return retry_after(reply)
    if reply.status_code != 200:
        reply.request_meta["name"] = NO_ANSWER
        reply.failure(f"status {reply.status_code}")
    return 0.0


class Asker(FastHttpUser):
    wait_time = constant(0)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S

    @task
    def ask(self) -> None:
        with self.client.post(INFER, json=question(), name=ANSWERED, catch_response=True) as reply:
            wait = sort_refusal(reply)
        time.sleep(wait)  # gevent's, under locust


class StreamAsker(HttpUser):
    wait_time = constant(0)

    @task
    def ask(self) -> None:
        started = time.perf_counter()
        first: float | None = None
        with self.client.post(
            STREAM,
            json=question(),
            name=ANSWERED,
            stream=True,
            catch_response=True,
            timeout=TIMEOUT_S,
        ) as reply:
            wait = sort_refusal(reply)
            if reply.status_code == 200:
                events = []
                for line in reply.iter_lines():
                    if line.startswith(b"event: "):
                        events.append(line[7:].decode())
                        if events[-1] == "delta" and first is None:
                            first = time.perf_counter() - started
                # locust timed the response's headers; the answer ends with its last event.
                reply.request_meta["response_time"] = (time.perf_counter() - started) * 1000
                if "error" in events or "done" not in events:
                    reply.request_meta["name"] = NO_ANSWER
                    reply.failure(f"the stream's events: {events[-1:] or 'none'}")
                else:
                    reply.success()
        if first is not None:
            self.environment.stats.get(FIRST_TOKEN, "TTFT").log(first * 1000, 0)
        time.sleep(wait)

"""The clients of the serving measurements. `hang_up`: clients that ask and go away a set time
later, before their answer, as any client whose deadline passes does (httpx closes the connection
of a request it abandons, mid-request or mid-stream). The load itself comes from wrk and from
locust: CLOSED_LOOP is the locustfile of the benchmarks' closed loop, run by
devstack/perf/loadtest.py (never imported here: locust patches the whole process for gevent),
and the names of its entries in locust's statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from pathlib import Path

import httpx

QUESTION = "How do I roll back a Deployment?"
INFER = "/v1/agent/infer"
STREAM = "/v1/agent/infer/stream"
CLOSED_LOOP = Path(__file__).with_name("closed_loop.py")
ANSWERED, REFUSED, NO_ANSWER, FIRST_TOKEN = "answered", "refused", "no answer", "first token"
_unique = itertools.count()


def question(seed: str) -> dict[str, str]:
    """A question no one asked before (a cache miss), as an infer body."""
    return {"query": f"{QUESTION} (case {seed}-{next(_unique)})"}


async def hang_up(
    url: str, clients: int, after_s: float, stream: bool = False, query: str | None = None
) -> None:
    """`clients` clients at once that each ask (a unique question, or all `query`) and close
    their connection `after_s` later, whatever they got by then."""
    seed = secrets.token_hex(3)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)

    async def client(http: httpx.AsyncClient) -> None:
        body = question(seed) if query is None else {"query": query}
        with contextlib.suppress(TimeoutError):
            async with (
                asyncio.timeout(after_s),
                http.stream("POST", STREAM if stream else INFER, json=body) as response,
            ):
                async for _ in response.aiter_raw():
                    pass

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))

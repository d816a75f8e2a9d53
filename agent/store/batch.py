"""Searches that arrive while Chroma answers another go to it together: one query call for all
of them (Chroma's `query` takes many vectors), instead of a call each.

A Chroma call costs a fixed part whatever it asks (about 0.6 ms of CPU embedded; a round trip
to a server) and a small part per vector (about 0.13 ms): fifty questions at once cost 0.27 ms
each in calls of four and 0.15 ms in calls of 32, against 0.73 ms alone (docs/benchmarks.md,
issue #25). No search waits for a batch to fill: one that finds no call under way goes at once,
and those that arrive meanwhile go together next, a call for each number of passages wanted.
Each search waits at most `timeout_s`, as its own call did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

Nearest = list[tuple[str, float]]  # chunk ids and scores, nearest first
# One call: the vectors and how many passages each wants; the nearest for each, in order.
Query = Callable[[list[Sequence[float]], int], Awaitable[list[Nearest]]]


@dataclass(frozen=True)
class _Search:
    vector: Sequence[float]
    top_k: int
    answer: asyncio.Future[Nearest]


class Batcher:
    def __init__(self, query: Query, timeout_s: float) -> None:
        self._query = query
        self._timeout_s = timeout_s
        self._waiting: list[_Search] = []
        self._drain: asyncio.Task[None] | None = None
        self.calls = 0  # the calls made, for the tests

    async def search(self, vector: Sequence[float], top_k: int) -> Nearest:
        """The nearest chunks; TimeoutError past `timeout_s`; the call's error if it failed."""
        loop = asyncio.get_running_loop()
        search = _Search(vector, top_k, loop.create_future())
        self._waiting.append(search)
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._drain_waiting())
        async with asyncio.timeout(self._timeout_s):
            return await search.answer  # cancelled with its waiter: the call skips it

    def close(self) -> None:
        if self._drain is not None:
            self._drain.cancel()

    async def _drain_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            by_top_k: dict[int, list[_Search]] = {}
            for search in batch:
                if not search.answer.done():
                    by_top_k.setdefault(search.top_k, []).append(search)
            for top_k, searches in by_top_k.items():
                self.calls += 1
                try:
                    found = await self._query([s.vector for s in searches], top_k)
                    if len(found) != len(searches):
                        raise RuntimeError(f"{len(found)} answers to {len(searches)} searches")
                except Exception as exc:
                    for search in searches:
                        _fail(search.answer, exc)
                    continue
                for search, nearest in zip(searches, found, strict=True):
                    if not search.answer.done():  # else its search gave up
                        search.answer.set_result(nearest)


def _fail(answer: asyncio.Future[Nearest], error: Exception) -> None:
    """An error of its own for each search: one object raised in many tasks would gather every
    task's traceback."""
    if answer.done():
        return
    try:
        own = type(error)(*error.args)
    except Exception:
        answer.set_exception(error)
        return
    own.__cause__ = error
    answer.set_exception(own)

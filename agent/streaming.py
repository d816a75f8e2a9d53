"""An answer as it is written, for the streaming endpoint: the pieces of its text in order, which
joined are exactly the answer the request ends with (the `done` event's `answer`).

Gemini's text is passed on as it comes (`delta`), with the notice the answer starts with when
retrieval is down put before its first piece, and the whitespace the answer is stripped of held
back. An answer that comes whole (the offline provider's, a fallback's, a cache hit) is written
line by line at once (`whole`). Each piece is timed for OpenTelemetry's GenAI server metrics:
time to the first piece since the request arrived, and between pieces.
"""

from __future__ import annotations

import asyncio
import time

from agent.metrics import Metrics


class AnswerStream:
    def __init__(self, metrics: Metrics, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.began = False  # some text was written: the answer can no longer change course
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self._lead = ""
        self._held = ""
        self._last: float | None = None
        self._metrics = metrics

    def lead_with(self, text: str) -> None:
        """Text the answer starts with, written before the first piece of a live answer."""
        self._lead = text

    def delta(self, text: str, provider: str) -> None:
        """A piece of the answer as the provider writes it."""
        text = self._held + text if self.began else text.lstrip()
        body = text.rstrip()
        self._held = text[len(body) :]
        if body:
            self._write(self._lead + body if not self.began else body, provider)

    def whole(self, text: str, provider: str) -> None:
        """A finished answer, written at once, a line at a time."""
        for line in text.splitlines(keepends=True):
            self._write(line, provider)

    def close(self) -> None:
        """No more pieces: the answer is complete, or failed."""
        self._pieces.put_nowait(None)

    async def next(self) -> str | None:
        """The next piece, waiting for it; None once closed."""
        return await self._pieces.get()

    def ready(self) -> list[str]:
        """The pieces already written, without waiting (a closed stream's end stays queued)."""
        pieces = []
        while not self._pieces.empty():
            piece = self._pieces.get_nowait()
            if piece is None:
                self._pieces.put_nowait(None)
                break
            pieces.append(piece)
        return pieces

    def _write(self, text: str, provider: str) -> None:
        now = time.perf_counter()
        if self._last is None:
            self._metrics.time_to_first_token.labels(provider).observe(now - self.started)
        else:
            self._metrics.time_per_output_chunk.labels(provider).observe(now - self._last)
        self._last = now
        self.began = True
        self._pieces.put_nowait(text)

"""The events of Gemini's `streamGenerateContent?alt=sse`: Server-Sent Events as the HTML
standard defines the format (html.spec.whatwg.org, "Server-sent events"), each event's data one
GenerateContentResponse as JSON. An event is its `data:` lines (one leading space dropped, the
lines joined by LF), ended by an empty line; lines end at CR, LF or CRLF only (a JSON string may
hold U+2028, which `str.splitlines` would break at); comments and the other fields are ignored.
A failed call's error, JSON over several lines without `data:`, is read whole at the end.
tests/agent/llm/test_gemini_wire.py checks that the text read is the text google-genai reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

_END_OF_LINE = re.compile(rb"\r\n|\r|\n")
_IGNORED = (b":", b"event:", b"id:", b"retry:")  # comments and fields Gemini's JSON is not in


async def json_events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[Any, None]:
    """Each event's data, parsed; a JSON body without `data:` lines (an error) last."""
    pending = b""
    data: list[bytes] = []
    raw: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
        end = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
        *lines, rest = _END_OF_LINE.split(pending[:end])
        pending = rest + pending[end:]
        for line in lines:
            if not line:
                if data:
                    yield _parse(b"\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif not line.startswith(_IGNORED):
                raw.append(line)
    if pending.startswith(b"data:"):  # a last line without its end of line
        data.append(pending[6:] if pending.startswith(b"data: ") else pending[5:])
    elif pending.strip() and not pending.startswith(_IGNORED):
        raw.append(pending)
    if data:
        yield _parse(b"\n".join(data))
    if raw:
        yield _parse(b"\n".join(raw))


def _parse(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # the caller refuses what is not an object

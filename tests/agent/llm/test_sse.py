"""Reading Gemini's SSE stream as google-genai reads it, whatever the chunking of the bytes."""

import pytest

from agent.llm.sse import json_events

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


async def chunked(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(data: bytes, size: int) -> list:
    return [event async for event in json_events(chunked(data, size))]


STREAM = (
    b'data: {"a": 1}\r\n\r\n'
    b": a comment\n"
    b'event: message\ndata: {"b": "x\xe2\x80\xa8y"}\n\n'  # U+2028 inside a JSON string
    b'data: {"c":\ndata: 3}\r\r'  # an event over two data lines, CR line ends
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
async def test_events_are_read_alike_however_the_bytes_are_cut(size) -> None:
    assert await read(STREAM, size) == [{"a": 1}, {"b": "x\u2028y"}, {"c": 3}]


async def test_a_last_event_without_its_blank_line_is_read() -> None:
    assert await read(b'data: {"a": 1}', 4) == [{"a": 1}]


async def test_an_error_sent_as_plain_json_lines_is_read_at_the_end() -> None:
    error = b'{\n  "error": {\n    "code": 429,\n    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n'
    assert await read(error, 5) == [{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}]


async def test_data_that_is_not_json_is_read_as_none() -> None:
    assert await read(b"data: {oops\n\n", 3) == [None]

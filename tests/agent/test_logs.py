import json
import logging

import pytest

from agent.logs import JsonFormatter, configure_logging, request_id_var

pytestmark = pytest.mark.unit


def test_records_are_single_line_json_with_extras_and_request_id() -> None:
    record = logging.makeLogRecord(
        {
            "name": "agent.x",
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("world",),
            "route": "/v1/agent/infer",
            "status": 200,
        }
    )
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert (
        entry["msg"] == "hello world" and entry["level"] == "info" and entry["logger"] == "agent.x"
    )
    assert entry["request_id"] == "req-1"
    assert entry["route"] == "/v1/agent/infer" and entry["status"] == 200
    assert "args" not in entry and "color_message" not in entry


def test_exceptions_are_included() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: bad" in json.loads(JsonFormatter().format(record))["exc"]


def test_configure_routes_everything_through_one_json_handler(capsys) -> None:
    configure_logging("info")
    logging.getLogger("uvicorn.error").info("server line")
    logging.getLogger("agent.test").debug("hidden at info")
    err = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["msg"] for line in err] == ["server line"]
    assert logging.getLogger("uvicorn.access").disabled

import pytest

from agent.llm import http
from agent.llm.base import (
    LLMAuthError,
    LLMBadResponseError,
    LLMRateLimitError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from agent.llm.gemini import GeminiAPIError, map_error

pytestmark = pytest.mark.unit


def _api_error(code: int, message: str = "boom", details: object = None) -> GeminiAPIError:
    return GeminiAPIError(
        code, {"code": code, "message": message, "status": "X", "details": details}
    )


@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (_api_error(401), LLMAuthError, 502),
        (_api_error(403), LLMAuthError, 502),
        (_api_error(400, "API key not valid. Please pass a valid API key."), LLMAuthError, 502),
        (_api_error(429), LLMRateLimitError, 503),
        (_api_error(500), LLMUnavailableError, 503),
        (_api_error(503), LLMUnavailableError, 503),
        (_api_error(504), LLMTimeoutError, 504),
        (_api_error(400, "bad request"), LLMBadResponseError, 502),
        (_api_error(404, "model not found"), LLMBadResponseError, 502),
        (TimeoutError(), LLMTimeoutError, 504),
        (http.ConnectError("refused"), LLMUnavailableError, 503),
        (http.RemoteProtocolError("closed"), LLMUnavailableError, 503),
        (ValueError("odd"), LLMBadResponseError, 502),
    ],
)
def test_error_mapping(exc: BaseException, expected: type, status: int) -> None:
    mapped = map_error(exc)
    assert isinstance(mapped, expected)
    assert mapped.status == status


def test_auth_error_never_echoes_the_key() -> None:
    mapped = map_error(_api_error(400, "API key not valid: AIzaSECRET"))
    assert "AIzaSECRET" not in str(mapped)

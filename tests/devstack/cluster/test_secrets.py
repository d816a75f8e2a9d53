import pytest

from devstack.cluster.secrets import SecretError, fill_secret, secret_values

pytestmark = pytest.mark.unit


def secret() -> dict:
    return {"kind": "Secret", "metadata": {"name": "vaia-agent-secrets"}, "stringData": {}}


def test_only_the_secret_variables_are_taken_and_blank_ones_are_left_alone() -> None:
    assert secret_values({"GEMINI_API_KEY": " k-123 ", "OTHER": "x"}) == {"GEMINI_API_KEY": "k-123"}
    assert secret_values({"GEMINI_API_KEY": "  "}) == {}
    assert secret_values({}) == {}


def test_multiline_values_are_refused() -> None:
    with pytest.raises(SecretError, match="single line"):
        secret_values({"GEMINI_API_KEY": "a\nEVIL=1"})


def test_the_values_go_into_the_secret_in_memory() -> None:
    objs = [{"kind": "ConfigMap", "metadata": {"name": "x"}}, secret()]
    fill_secret(objs, {"GEMINI_API_KEY": "k"})
    assert objs[1]["stringData"] == {"GEMINI_API_KEY": "k"}


def test_a_stream_without_the_secret_is_refused() -> None:
    with pytest.raises(SecretError, match="no Secret vaia-agent-secrets"):
        fill_secret([{"kind": "ConfigMap", "metadata": {"name": "x"}}], {"GEMINI_API_KEY": "k"})

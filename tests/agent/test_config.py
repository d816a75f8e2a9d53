import pytest
from pydantic import ValidationError

from agent.config import Settings

pytestmark = pytest.mark.unit


def test_defaults_follow_the_design_contract() -> None:
    s = Settings(_env_file=None)
    assert s.port == 8080
    assert s.llm_provider == "auto"
    assert s.resolved_provider == "offline"  # no key: offline
    assert s.gemini_embed_model == "gemini-embedding-001"
    assert s.chroma_port == 8000
    assert s.chroma_host is None and s.redis_url is None
    assert not s.auth_enabled
    assert s.log_level == "info"


def test_auto_picks_gemini_when_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "abc")
    s = Settings(_env_file=None)
    assert s.resolved_provider == "gemini"
    assert "abc" not in repr(s) and "abc" not in str(s.model_dump())


def test_blank_key_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "  ")
    assert Settings(_env_file=None).resolved_provider == "offline"


def test_gemini_without_key_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="LLM_PROVIDER=gemini needs GEMINI_API_KEY"):
        Settings(_env_file=None, llm_provider="gemini")


def test_api_keys_are_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", " k1, k2 ,,")
    s = Settings(_env_file=None)
    assert [k.get_secret_value() for k in s.agent_api_keys] == ["k1", "k2"]
    assert s.auth_enabled
    assert "k1" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "0"),
        ("PORT", "70000"),
        ("LLM_PROVIDER", "openai"),
        ("LOG_LEVEL", "loud"),
        ("FAULT_ERROR_RATE", "1.5"),
        ("CHROMA_COLLECTION_PREFIX", "bad name!"),
        ("OFFLINE_EMBEDDER", "word2vec"),
        ("RELEVANCE_FLOOR", "1.5"),
        ("RELEVANCE_FLOOR", "high"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert Settings(_env_file=None).log_level == "debug"


def test_overlap_must_be_smaller_than_half_a_chunk() -> None:
    with pytest.raises(ValidationError, match="CHUNK_OVERLAP"):
        Settings(_env_file=None, chunk_size=400, chunk_overlap=300)


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("REDIS_URL=redis://example:6379/0\nMAX_QUERY_CHARS=77\n")
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.redis_url == "redis://example:6379/0"
    assert s.max_query_chars == 77


def test_secrets_come_from_files_in_secrets_dir_after_the_environment(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mounted Kubernetes Secret: one file per setting, the environment still wins."""
    (tmp_path / "GEMINI_API_KEY").write_text("k-from-file")
    (tmp_path / "CHROMA_HOST").write_text("chromadb")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "k-from-file"
    assert settings.chroma_host == "chromadb" and settings.resolved_provider == "gemini"
    monkeypatch.setenv("CHROMA_HOST", "10.0.0.7")
    assert Settings(_env_file=None).chroma_host == "10.0.0.7"  # type: ignore[call-arg]
    (tmp_path / "GEMINI_API_KEY").write_text("")  # an empty key in the Secret: offline
    assert Settings(_env_file=None).resolved_provider == "offline"  # type: ignore[call-arg]


def test_a_secrets_dir_that_is_not_there_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent/secrets")
    with pytest.raises(ValueError, match="SECRETS_DIR=/nonexistent/secrets is not a directory"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_relevance_floor_is_unset_by_default_and_when_blank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).relevance_floor is None
    monkeypatch.setenv("RELEVANCE_FLOOR", " ")
    assert Settings(_env_file=None).relevance_floor is None
    monkeypatch.setenv("RELEVANCE_FLOOR", "0.4")
    assert Settings(_env_file=None).relevance_floor == 0.4


@pytest.mark.unit
def test_chroma_s_token_is_a_secret_of_the_proxy_s_alphabet(make_settings) -> None:
    token = "A1_b2-" + "c" * 30
    settings = make_settings(chroma_auth_token=token)
    assert settings.chroma_auth_token.get_secret_value() == token
    assert token not in repr(settings)
    assert make_settings(chroma_auth_token="  ").chroma_auth_token is None
    for bad in ("short", "x" * 31, "a token with spaces and more than 32 characters"):
        with pytest.raises(ValidationError, match="CHROMA_AUTH_TOKEN must be 32 or more") as info:
            make_settings(chroma_auth_token=bad)
        assert bad not in str(info.value)  # a secret's value never reaches a log

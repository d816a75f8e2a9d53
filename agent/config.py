"""All configuration of the agent, in one typed place (environment variables, `.env`)."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

# A folder of one file per setting (a mounted Kubernetes Secret): read after the environment and
# .env, so that secrets need not be environment variables, which child processes and crash
# dumps inherit.
SECRETS_DIR_VARIABLE = "SECRETS_DIR"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,}")

ProviderName = Literal["auto", "gemini", "offline"]
# What the offline provider retrieves with: auto is all-MiniLM-L6-v2 (with the words' share,
# agent/embeddings/hybrid.py) when its package is installed, else the hashing embedder.
OfflineEmbedderName = Literal["auto", "minilm", "hashing"]


class Settings(BaseSettings):
    """Every variable is documented in the README's configuration table."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # An error names the setting, never its value: some are secrets.
        hide_input_in_errors=True,
    )

    # --- LLM ---
    llm_provider: ProviderName = "auto"
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-3.5-flash"
    gemini_embed_model: str = "gemini-embedding-001"
    google_gemini_base_url: str | None = None
    embed_dimensions: int = Field(768, ge=64, le=3072)
    offline_embedder: OfflineEmbedderName = "auto"
    # Every Gemini call (generate, embed, a stream's first chunk) as a whole, not per read.
    llm_timeout_seconds: float = Field(20.0, gt=0)
    # A stream that sends nothing for this long between two chunks is ended (llm_timeout).
    llm_stream_stall_seconds: float = Field(10.0, gt=0)
    llm_max_attempts: int = Field(4, ge=1, le=10)
    llm_retry_initial_seconds: float = Field(0.5, ge=0)
    llm_retry_max_seconds: float = Field(8.0, ge=0)
    # When the LLM is unavailable after retries, answer extractively (flagged) instead of failing.
    llm_fallback_offline: bool = True
    # The per-model circuit breaker (agent/llm/breaker.py): outages in a row that open it (a 429
    # or a Retry-After opens it at once), its first cooldown without a Retry-After (doubling),
    # the longest cooldown, and the probes let through at a time when a cooldown ends.
    llm_breaker_failures: int = Field(3, ge=1, le=100)
    llm_breaker_cooldown_seconds: float = Field(2.0, gt=0)
    llm_breaker_max_cooldown_seconds: float = Field(60.0, gt=0)
    llm_breaker_probes: int = Field(1, ge=1, le=100)

    # --- ChromaDB ---
    chroma_host: str | None = None
    chroma_port: int = Field(8000, ge=1, le=65535)
    chroma_path: Path = Path(".vaia/chroma")
    chroma_collection_prefix: str = Field("vaia_kb", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{1,40}$")
    chroma_timeout_seconds: float = Field(5.0, gt=0)
    # The token the Chroma server's auth proxy asks for (`Authorization: Bearer`), from the
    # Secret in the cluster; unset: no header (the embedded store, or a server without a proxy).
    chroma_auth_token: SecretStr | None = None

    # --- Redis ---
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(0.5, gt=0)
    # After a Redis failure, skip Redis for this long instead of paying a timeout per request.
    redis_cooldown_seconds: float = Field(2.0, ge=0)
    cache_ttl_seconds: int = Field(600, ge=0)
    session_max_turns: int = Field(10, ge=0, le=100)
    session_ttl_seconds: int = Field(3600, ge=1)
    rate_limit_per_minute: int = Field(120, ge=0)  # 0 disables the limit
    # Failed bearer authentications per client IP per minute before 429; 0 disables.
    auth_failures_per_minute: int = Field(10, ge=0)

    # --- API ---
    # Inference requests in flight per process; past it, 503 with Retry-After at once (0: no
    # limit). docs/benchmarks.md, "Per-pod concurrency": one process carries 100 requests in
    # flight (Gemini at 300 ms) at 150-215 req/s without errors on about one core; past that the
    # event loop is the queue, and every request waits longer, none more is answered.
    max_inflight_requests: int = Field(100, ge=0)
    agent_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    max_query_chars: int = Field(4000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_header_bytes: int = Field(16_384, ge=1024)
    max_document_chars: int = Field(200_000, ge=100)
    max_documents_per_request: int = Field(50, ge=1)
    default_top_k: int = Field(4, ge=1, le=20)
    # Passages less similar than this (cosine) are not worth citing.
    retrieval_min_score: float = Field(0.05, ge=-1.0, le=1.0)
    # A question is covered only when a passage reaches this score; passages below it are not
    # cited. Unset: the floor calibrated for the embedder in use (agent/embeddings/floors.py),
    # none where none was calibrated (Gemini embeddings). -1 turns it off.
    relevance_floor: float | None = Field(None, ge=-1.0, le=1.0)

    # --- knowledge base ---
    chunk_size: int = Field(900, ge=200, le=8000)
    chunk_overlap: int = Field(150, ge=0)
    seed_on_startup: bool = True

    # --- process ---
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    shutdown_grace_seconds: float = Field(20.0, ge=0)

    # --- test-only fault injection (the load-test verdict tests need a failing server) ---
    fault_latency_ms: int = Field(0, ge=0, le=60_000)
    fault_error_rate: float = Field(0.0, ge=0.0, le=1.0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        folder = os.environ.get(SECRETS_DIR_VARIABLE)
        if not folder:
            return init_settings, env_settings, dotenv_settings
        if not Path(folder).is_dir():
            raise ValueError(f"{SECRETS_DIR_VARIABLE}={folder} is not a directory")
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return init_settings, env_settings, dotenv_settings, secrets

    @field_validator("agent_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("chroma_auth_token")
    @classmethod
    def _token_characters(cls, value: SecretStr | None) -> SecretStr | None:
        # What the proxy accepts (k8s/base/chromadb-auth/start.sh); the value is never echoed.
        if value is not None and not _TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("CHROMA_AUTH_TOKEN must be 32 or more of A-Z a-z 0-9 _ -")
        return value

    @field_validator("gemini_api_key", "chroma_auth_token", "relevance_floor", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.llm_provider == "gemini" and self.gemini_api_key is None:
            raise ValueError(
                "LLM_PROVIDER=gemini needs GEMINI_API_KEY (or use LLM_PROVIDER=offline)"
            )
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError("CHUNK_OVERLAP must be less than half of CHUNK_SIZE")
        return self

    @cached_property
    def resolved_provider(self) -> Literal["gemini", "offline"]:
        if self.llm_provider == "auto":
            return "gemini" if self.gemini_api_key is not None else "offline"
        return self.llm_provider

    @property
    def auth_enabled(self) -> bool:
        return bool(self.agent_api_keys)

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.config import Settings
from tests.conftest import running_app


def api_settings(path, **overrides) -> Settings:
    values = {
        "chroma_path": path,
        "log_level": "warning",
        "llm_provider": "offline",
        "offline_embedder": "hashing",  # fast seeding; test_answers.py runs the model
        "rate_limit_per_minute": 100_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One seeded app per module (seeding costs about a second)."""
    with running_app(api_settings(tmp_path_factory.mktemp("chroma"))) as c:
        yield c

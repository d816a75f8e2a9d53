"""The smoke test after a deploy: the service is ready and answers a question from its runbooks."""

from __future__ import annotations

import httpx

from devstack.core.errors import DevstackError


class SmokeTestError(DevstackError):
    """The deployed service is not ready, or does not answer a question."""


def smoke_test(base_url: str, api_key: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        return _smoke(base_url, headers)
    except httpx.HTTPError as exc:
        raise SmokeTestError(f"{base_url} did not answer: {exc}") from exc


def _smoke(base_url: str, headers: dict[str, str]) -> str:
    ready = httpx.get(f"{base_url}/ready", timeout=10)
    if ready.status_code != 200:
        raise SmokeTestError(f"/ready answered {ready.status_code}: {ready.text[:200]}")
    answer = httpx.post(
        f"{base_url}/v1/agent/infer",
        json={"query": "How do I roll back a Deployment?"},
        headers=headers,
        timeout=30,
    )
    if answer.status_code != 200 or not answer.json().get("answer", "").strip():
        raise SmokeTestError(f"/v1/agent/infer answered {answer.status_code}: {answer.text[:200]}")
    status = ready.json().get("status")
    return f"ready ({status}); infer answered with {len(answer.json()['sources'])} sources"

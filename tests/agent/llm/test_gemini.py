"""The gemini provider against a local stand-in of the Gemini REST API (real SDK, real HTTP)."""

import pytest

from agent.domain import Passage
from agent.embeddings.base import EmbeddingError
from agent.embeddings.gemini import GeminiEmbedder
from agent.llm.base import LLMAuthError, LLMBadResponseError, LLMRateLimitError, LLMUnavailableError
from agent.llm.gemini import GeminiClient, GeminiProvider
from agent.metrics import Metrics
from agent.prompts import build_prompt
from agent.tools import ToolContext, default_tools

PASSAGE = Passage(
    "r::0", "rollbacks", "Rollbacks", "src", "", "Run kubectl rollout undo to roll back.", 0.7
)


pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def provider(gemini, make_settings):
    settings = make_settings(
        llm_provider="gemini",
        gemini_api_key=gemini.api_key,
        google_gemini_base_url=gemini.url,
        llm_max_attempts=3,
    )
    metrics = Metrics()
    client = GeminiClient(settings, metrics)
    yield (
        GeminiProvider(client, settings.gemini_model, metrics),
        GeminiEmbedder(client, "gemini-embedding-001", 768),
        metrics,
    )
    await client.aclose()


async def _search(query: str, top_k: int) -> list[Passage]:
    return [Passage("a::3", "autoscaling", "Autoscaling", "src", "", f"found for {query}", 0.5)]


async def complete(llm: GeminiProvider, query: str = "how to roll back?"):
    prompt = build_prompt(query, [PASSAGE], [])
    ctx = ToolContext(search=_search, found=[PASSAGE])
    return await llm.complete(prompt, default_tools(), ctx), ctx


async def test_generate_sends_system_instruction_tools_and_fenced_query(provider, gemini) -> None:
    llm, _, _ = provider
    completion, _ = await complete(llm)
    assert completion.cited == [1]
    assert "kubectl rollout undo" in completion.text
    [call] = gemini.calls("generateContent")
    assert call.model == "gemini-3.5-flash"
    assert call.headers["x-goog-api-key"] == gemini.api_key
    body = call.body
    assert "You are VAIA" in body["systemInstruction"]["parts"][0]["text"]
    assert (
        "<user_query>\nhow to roll back?\n</user_query>" in body["contents"][0]["parts"][0]["text"]
    )
    names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert names == ["search_knowledge", "error_budget"]


async def test_retries_500s_then_succeeds(provider, gemini) -> None:
    llm, _, metrics = provider
    gemini.fail("generateContent", 503)
    gemini.fail("generateContent", 500)
    completion, _ = await complete(llm)
    assert "[1]" in completion.text
    assert len(gemini.calls("generateContent")) == 3
    assert metrics.llm_retries.labels("gemini")._value.get() == 2


async def test_a_429_is_not_retried_and_maps_to_rate_limited_with_retry_after(
    provider, gemini
) -> None:
    """A spent quota said when to come back: retrying inside the request would only spend the
    next minute's quota too (the breaker waits, for every request at once)."""
    llm, _, metrics = provider
    gemini.fail("generateContent", 429, times=3, retry_after="7")
    with pytest.raises(LLMRateLimitError) as info:
        await complete(llm)
    assert info.value.retry_after == 7.0
    assert len(gemini.calls("generateContent")) == 1
    assert metrics.llm_retries.labels("gemini")._value.get() == 0
    assert metrics.llm_latency.labels("gemini", "llm_rate_limited")._sum.get() > 0


async def test_a_503_that_says_when_to_come_back_is_not_retried(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.fail("generateContent", 503, times=3, retry_after="Wed, 21 Oct 2037 07:28:00 GMT")
    with pytest.raises(LLMUnavailableError) as info:
        await complete(llm)
    assert (info.value.retry_after or 0) > 3600  # an HTTP date, years away
    assert len(gemini.calls("generateContent")) == 1


async def test_the_retry_delay_of_geminis_error_body_counts_as_retry_after(
    provider, gemini
) -> None:
    llm, _, _ = provider
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    gemini.fail("generateContent", 429, details=[retry_info])
    with pytest.raises(LLMRateLimitError) as info:
        await complete(llm)
    assert info.value.retry_after == 37.0


async def test_persistent_500_maps_to_unavailable(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.fail("generateContent", 503, times=3)
    with pytest.raises(LLMUnavailableError):
        await complete(llm)


async def test_client_errors_are_not_retried(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.fail("generateContent", 400)
    with pytest.raises(LLMBadResponseError):
        await complete(llm)
    assert len(gemini.calls("generateContent")) == 1


async def test_wrong_key_is_an_auth_error(gemini, make_settings) -> None:
    settings = make_settings(
        llm_provider="gemini", gemini_api_key="wrong", google_gemini_base_url=gemini.url
    )
    client = GeminiClient(settings, Metrics())
    try:
        with pytest.raises(LLMAuthError, match="GEMINI_API_KEY"):
            await complete(GeminiProvider(client, "m", Metrics()))
    finally:
        await client.aclose()


async def test_unreachable_server_is_unavailable(make_settings) -> None:
    settings = make_settings(
        llm_provider="gemini",
        gemini_api_key="k",
        google_gemini_base_url="http://127.0.0.1:9",
        llm_max_attempts=2,
    )
    client = GeminiClient(settings, Metrics())
    try:
        with pytest.raises(LLMUnavailableError, match="cannot reach Gemini"):
            await complete(GeminiProvider(client, "m", Metrics()))
    finally:
        await client.aclose()


async def test_function_calls_run_tools_and_results_go_back(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.reply_function_call("search_knowledge", {"query": "hpa", "top_k": 1})
    gemini.reply_function_call("error_budget", {"slo_percent": 99.9})
    gemini.reply_text("Scale with the HPA [2]; the budget is 43.2 minutes.")
    completion, ctx = await complete(llm)
    assert [c.name for c in completion.tool_calls] == ["search_knowledge", "error_budget"]
    assert completion.tool_calls[1].result["allowed_downtime_minutes"] == 43.2
    assert completion.cited == [2]
    assert [p.chunk_id for p in ctx.found] == ["r::0", "a::3"]
    last = gemini.calls("generateContent")[-1].body["contents"]
    responses = [p["functionResponse"] for c in last for p in c["parts"] if "functionResponse" in p]
    assert [r["name"] for r in responses] == ["search_knowledge", "error_budget"]


async def test_bad_tool_arguments_go_back_as_an_error_result(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.reply_function_call("error_budget", {"slo_percent": 250})
    gemini.reply_text("Sorry.")
    completion, _ = await complete(llm)
    assert completion.tool_calls[0].ok is False
    last = gemini.calls("generateContent")[-1].body["contents"]
    [response] = [
        p["functionResponse"] for c in last for p in c["parts"] if "functionResponse" in p
    ]
    assert response["response"]["error"] == "invalid arguments"


async def test_empty_answer_is_a_bad_response(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.reply_text("")
    with pytest.raises(LLMBadResponseError, match="no text"):
        await complete(llm)


async def test_citations_out_of_range_are_dropped(provider, gemini) -> None:
    llm, _, _ = provider
    gemini.reply_text("See [1] and [7].")
    completion, _ = await complete(llm)
    assert completion.cited == [1]


async def test_embeddings_batch_and_task_types(provider, gemini) -> None:
    _, embedder, _ = provider
    texts = [f"text {i}" for i in range(150)]
    vectors = await embedder.embed(texts, "document")
    assert len(vectors) == 150 and len(vectors[0]) == 768
    first, second = gemini.calls("batchEmbedContents")
    assert len(first.body["requests"]) == 100 and len(second.body["requests"]) == 50
    assert first.body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"
    await embedder.embed(["q"], "query")
    assert (
        gemini.calls("batchEmbedContents")[-1].body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    )


async def test_embedding_failure_is_an_embedding_error(provider, gemini) -> None:
    _, embedder, _ = provider
    gemini.fail("batchEmbedContents", 500, times=3)
    with pytest.raises(EmbeddingError):
        await embedder.embed(["x"], "query")

"""The provider and the embedder speak Gemini's REST API themselves (agent/llm/gemini.py says
why). Here the same inputs go both ways, through google-genai's typed methods (the SDK's public
API, as the agent used it before) and through the agent, to a stand-in that records the
requests: the same paths, headers and bytes go over the wire, and the same answers read alike.
The only headers that differ are the two that name the client (user-agent, x-goog-api-client)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from google import genai
from google.genai import types

from agent.domain import Passage
from agent.embeddings.base import EmbeddingError
from agent.embeddings.gemini import GeminiEmbedder
from agent.llm.base import Completion, LLMBadResponseError, ToolCall
from agent.llm.gemini import MAX_TOOL_ROUNDS, TEMPERATURE, GeminiClient, GeminiProvider
from agent.metrics import Metrics
from agent.prompts import Prompt, build_prompt
from agent.tools import ToolContext, ToolRegistry, default_tools

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PASSAGES = [
    Passage(
        "r::0", "rollbacks", 'Rollbacks <&> "q"', "src", "", "Run `kubectl rollout undo`.", 0.7
    ),
    Passage("a::1", "autoscaling", "Autoscaling", "src", "", "The HPA scales on CPU.", 0.4),
]
_CITATION = re.compile(r"\[(\d{1,3})\]")


CLIENT_HEADERS = {"user-agent", "x-goog-api-client"}


@pytest.fixture
async def client(gemini, make_settings):
    settings = make_settings(
        llm_provider="gemini", gemini_api_key=gemini.api_key, google_gemini_base_url=gemini.url
    )
    client = GeminiClient(settings, Metrics())
    yield client
    await client.aclose()


@pytest.fixture
def sdk(gemini, make_settings) -> genai.Client:
    """google-genai as the agent configured it before: the same key, URL and timeout, its own
    retries off."""
    timeout = make_settings().llm_timeout_seconds
    return genai.Client(
        api_key=gemini.api_key,
        http_options=types.HttpOptions(
            base_url=gemini.url,
            timeout=int(timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def same_headers(agent: dict[str, str], sdk: dict[str, str]) -> None:
    """Every header the same but those that name the client, which name the agent."""
    assert {k: v for k, v in agent.items() if k not in CLIENT_HEADERS} == {
        k: v for k, v in sdk.items() if k not in CLIENT_HEADERS
    }
    assert agent["user-agent"].startswith("vaia-agent/")
    assert sdk["user-agent"].startswith("google-genai-sdk/")


async def _search(query: str, top_k: int) -> list[Passage]:
    return [Passage("s::9", "searched", "Searched", "src", "", f"found for {query}", 0.5)]


async def sdk_complete(
    client: genai.Client, model: str, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext
) -> Completion:
    """The agent's generate loop as it was, through the SDK's typed layer: the reference."""
    config = sdk_config(prompt, tools)
    contents = [types.Content(role="user", parts=[types.Part(text=prompt.user_message())])]
    calls: list[ToolCall] = []
    for _round in range(MAX_TOOL_ROUNDS + 1):
        response = await client.aio.models.generate_content(
            model=model, contents=contents, config=config
        )
        function_calls = response.function_calls or []
        if not function_calls or _round == MAX_TOOL_ROUNDS:
            break
        if response.candidates and response.candidates[0].content:
            contents.append(response.candidates[0].content)
        parts = []
        for fc in function_calls:
            name, args = fc.name or "", dict(fc.args or {})
            outcome = await tools.call(name, args, ctx)
            calls.append(ToolCall(name=name, arguments=args, result=outcome.result, ok=outcome.ok))
            parts.append(types.Part.from_function_response(name=name, response=outcome.result))
        contents.append(types.Content(role="user", parts=parts))
    text = (response.text or "").strip()
    if not text:
        raise LLMBadResponseError("no text")
    cited = sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(ctx.found)})
    return Completion(text=text, model=model, tool_calls=calls, cited=cited)


def sdk_config(prompt: Prompt, tools: ToolRegistry) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        system_instruction=prompt.system,
        temperature=TEMPERATURE,
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=tool.name,
                        description=tool.description,
                        parameters_json_schema=tool.json_schema(),
                    )
                    for tool in tools
                ]
            )
        ]
        if len(tools)
        else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def _wire(gemini, start: int) -> list[Any]:
    return gemini.requests[start:]


def _candidate(parts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        **extra,
    }


# Each script: the answers of one conversation, in order.
SCRIPTS = {
    "text": [_candidate([{"text": "Roll back with undo [1]."}])],
    "default answer": [],  # the stand-in's own grounded answer
    "two text parts and a thought": [
        _candidate(
            [
                {"text": "thinking...", "thought": True},
                {"text": "First [2], "},
                {"text": "then [1] and [9]."},
            ]
        )
    ],
    "tool rounds": [
        _candidate(
            [
                {
                    "functionCall": {"name": "search_knowledge", "args": {"query": "hpa"}},
                    "thoughtSignature": "c2lnbmF0dXJl",
                },
                {"functionCall": {"name": "error_budget", "args": {"slo_percent": 250}}},
            ]
        ),
        _candidate([{"functionCall": {"name": "error_budget", "args": {"slo_percent": 99.9}}}]),
        _candidate([{"text": "Scale with the HPA [3]; 43.2 minutes of budget."}]),
    ],
    "unknown tool": [
        _candidate([{"functionCall": {"name": "rm_rf", "args": {}}}]),
        _candidate([{"text": "I cannot."}]),
    ],
    "tool rounds exhausted": [
        _candidate([{"text": f"round {n}"}, {"functionCall": {"name": "rm_rf", "args": {}}}])
        for n in range(MAX_TOOL_ROUNDS + 1)
    ],
}


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=list(SCRIPTS))
async def test_generate_requests_and_answers_match_the_sdk(client, sdk, gemini, script) -> None:
    model = "gemini-3.5-flash"
    prompt = build_prompt("How do I <b>roll back</b>?\u200b", PASSAGES, [])
    answers = []
    for way in ("sdk", "agent"):
        for body in script:
            gemini.reply("generateContent", body)
        start = len(gemini.requests)
        ctx = ToolContext(search=_search, found=list(PASSAGES))
        if way == "sdk":
            completion = await sdk_complete(sdk, model, prompt, default_tools(), ctx)
        else:
            provider = GeminiProvider(client, model, Metrics())
            completion = await provider.complete(prompt, default_tools(), ctx)
        answers.append((completion, [p.chunk_id for p in ctx.found], _wire(gemini, start)))
    (sdk_answer, sdk_found, sdk_wire), (agent_answer, agent_found, agent_wire) = answers
    assert agent_answer == sdk_answer
    assert agent_found == sdk_found
    assert len(agent_wire) == len(sdk_wire) == max(len(script), 1)
    for agent_request, sdk_request in zip(agent_wire, sdk_wire, strict=True):
        assert agent_request.path == sdk_request.path
        same_headers(agent_request.headers, sdk_request.headers)
        assert agent_request.body == sdk_request.body  # the same JSON
        echoes_a_model_turn = any(c["role"] == "model" for c in agent_request.body["contents"])
        if echoes_a_model_turn:
            # The model's turn goes back as Gemini sent it; the SDK re-serialized it in its own
            # key order, the only difference (JSON objects have no order).
            assert len(agent_request.raw) == len(sdk_request.raw)
        else:
            assert agent_request.raw == sdk_request.raw  # the same bytes


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=list(SCRIPTS))
async def test_streamed_requests_match_the_sdks_stream(client, sdk, gemini, script) -> None:
    """streamGenerateContent?alt=sse with the same path, headers and bytes as the SDK's
    `generate_content_stream`; a one-round answer's text read alike."""
    model = "gemini-3.5-flash"
    prompt = build_prompt("How do I <b>roll back</b>?\u200b", PASSAGES, [])
    for body in script[:1]:
        gemini.reply("generateContent", body)
    start = len(gemini.requests)
    contents = [types.Content(role="user", parts=[types.Part(text=prompt.user_message())])]
    chunks = await sdk.aio.models.generate_content_stream(
        model=model, contents=contents, config=sdk_config(prompt, default_tools())
    )
    sdk_text = "".join([chunk.text or "" async for chunk in chunks]).strip()
    [sdk_request] = _wire(gemini, start)

    for body in script:
        gemini.reply("generateContent", body)
    start = len(gemini.requests)
    written: list[str] = []
    provider = GeminiProvider(client, model, Metrics())
    ctx = ToolContext(search=_search, found=list(PASSAGES))
    completion = await provider.complete_streaming(prompt, default_tools(), ctx, written.append)
    agent_requests = _wire(gemini, start)
    assert agent_requests[0].path == sdk_request.path
    assert sdk_request.path.endswith(":streamGenerateContent?alt=sse")
    same_headers(agent_requests[0].headers, sdk_request.headers)
    assert agent_requests[0].raw == sdk_request.raw
    assert len(agent_requests) == max(len(script), 1)  # every tool round streamed
    assert completion.text == "".join(written).strip()  # the answer is what was streamed
    if len(script) <= 1:
        assert completion.text == sdk_text


@pytest.mark.parametrize(
    "answer",
    [
        {"promptFeedback": {"blockReason": "SAFETY"}},
        _candidate([{"text": "   "}]),
        _candidate([{"text": "hidden", "thought": True}]),
        {"candidates": [{"finishReason": "MAX_TOKENS"}]},
    ],
    ids=["blocked", "blank", "only thoughts", "no content"],
)
async def test_answers_without_text_are_bad_responses_both_ways(
    client, sdk, gemini, answer
) -> None:
    prompt = build_prompt("q", PASSAGES, [])
    gemini.reply("generateContent", answer)
    ctx = ToolContext(search=_search, found=list(PASSAGES))
    with pytest.raises(LLMBadResponseError):
        await sdk_complete(sdk, "m", prompt, default_tools(), ctx)
    gemini.reply("generateContent", answer)
    provider = GeminiProvider(client, "m", Metrics())
    with pytest.raises(LLMBadResponseError, match="no text") as info:
        await provider.complete(prompt, default_tools(), ctx)
    if "promptFeedback" in answer:
        assert "SAFETY" in str(info.value)
    gemini.reply("generateContent", answer)
    with pytest.raises(LLMBadResponseError, match="no text") as streamed:
        await provider.complete_streaming(prompt, default_tools(), ctx, lambda _: None)
    if "promptFeedback" in answer:
        assert "SAFETY" in str(streamed.value)


async def test_no_tools_means_no_tools_field(client, sdk, gemini) -> None:
    prompt = build_prompt("q", PASSAGES, [])
    ctx = ToolContext(search=_search, found=list(PASSAGES))
    await sdk_complete(sdk, "m", prompt, ToolRegistry(), ctx)
    await GeminiProvider(client, "m", Metrics()).complete(prompt, ToolRegistry(), ctx)
    sdk_request, agent_request = gemini.requests[-2:]
    assert "tools" not in agent_request.body
    assert agent_request.raw == sdk_request.raw


@pytest.mark.parametrize("purpose", ["document", "query"])
@pytest.mark.parametrize("model", ["gemini-embedding-001", "models/text-embedding-004"])
async def test_embedding_requests_and_vectors_match_the_sdk(
    client, sdk, gemini, purpose, model
) -> None:
    texts = [f"text {i} <é>" for i in range(3)] if purpose == "document" else ["q?"]
    task = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}[purpose]
    response = await sdk.aio.models.embed_content(
        model=model,
        contents=texts,
        config=types.EmbedContentConfig(task_type=task, output_dimensionality=256),
    )
    embedder = GeminiEmbedder(client, model, 256, query_cache_size=0)
    vectors = await embedder.embed(texts, purpose)
    sdk_request, agent_request = gemini.requests[-2:]
    assert (agent_request.path, agent_request.raw) == (sdk_request.path, sdk_request.raw)
    same_headers(agent_request.headers, sdk_request.headers)
    for vector, reference in zip(vectors, response.embeddings or [], strict=True):
        values = reference.values or []
        norm = sum(v * v for v in values) ** 0.5
        assert vector == pytest.approx([v / norm for v in values], rel=1e-12)


async def test_a_repeated_query_is_embedded_once(client, gemini) -> None:
    embedder = GeminiEmbedder(client, "gemini-embedding-001", 768, query_cache_size=2)
    first = await embedder.embed(["how do I roll back?"], "query")
    first[0][0] = 42.0  # the caller's copy: the cache keeps its own
    again = await embedder.embed(["how do I roll back?"], "query")
    assert len(gemini.calls("batchEmbedContents")) == 1
    assert again[0][0] != 42.0 and len(again[0]) == 768
    await embedder.embed(["another"], "query")
    await embedder.embed(["a third"], "query")  # evicts the first (least recently used)
    await embedder.embed(["how do I roll back?"], "query")
    await embedder.embed(["chunk text"], "document")
    await embedder.embed(["chunk text"], "document")  # documents are never cached
    assert len(gemini.calls("batchEmbedContents")) == 6


async def test_a_failed_query_embedding_is_not_cached(client, gemini) -> None:
    embedder = GeminiEmbedder(client, "gemini-embedding-001", 768)
    gemini.fail("batchEmbedContents", 400)
    with pytest.raises(EmbeddingError):
        await embedder.embed(["q"], "query")
    assert len(await embedder.embed(["q"], "query")) == 1
    assert len(gemini.calls("batchEmbedContents")) == 2

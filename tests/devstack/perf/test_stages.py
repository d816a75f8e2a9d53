"""The stage of a sampled stack (devstack/perf/stages.py), on stacks as py-spy writes them for
the agent's process, and the table of a profile."""

from collections import Counter

import pytest

from devstack.perf import stages
from devstack.perf.pyspy import Frame, Samples

pytestmark = pytest.mark.unit

SITE = "/v/lib/python3.11/site-packages"
LIB = "/py/lib/python3.11"
REPO = "/work/x"

MAIN = (
    Frame("main", f"{REPO}/agent/__main__.py"),
    Frame("Server.run", f"{SITE}/uvicorn/server.py"),
    Frame("BaseEventLoop._run_once", f"{LIB}/asyncio/base_events.py"),
    Frame("Handle._run", f"{LIB}/asyncio/events.py"),
)
MIDDLEWARE = (
    *MAIN,
    Frame("RequestResponseCycle.run_asgi", f"{SITE}/uvicorn/protocols/http/httptools_impl.py"),
    Frame("FastAPI.__call__", f"{SITE}/fastapi/applications.py"),
    Frame("RequestContextMiddleware.__call__", f"{REPO}/agent/api/middleware.py"),
)
HANDLER = (
    *MAIN,
    Frame("ExceptionMiddleware.__call__", f"{SITE}/starlette/middleware/exceptions.py"),
    Frame("Router.__call__", f"{SITE}/starlette/routing.py"),
    Frame("get_request_handler.<locals>.app", f"{SITE}/fastapi/routing.py"),
    Frame("infer", f"{REPO}/agent/api/routes/infer.py"),
    Frame("AgentService.answer", f"{REPO}/agent/service.py"),
)
HTTPX = (
    Frame("AsyncClient.post", f"{SITE}/httpx/_client.py"),
    Frame("AsyncConnectionPool.handle_async_request", f"{SITE}/httpcore/_async/pool.py"),
)
GEMINI_POST = (Frame("GeminiClient.post", f"{REPO}/agent/llm/gemini.py"), *HTTPX)


def stage(*frames: Frame) -> str:
    return stages.stage_of(tuple(frames))


def test_a_gemini_call_for_the_embedder_is_the_embeddings() -> None:
    retrieve = Frame("AgentService.retrieve", f"{REPO}/agent/service.py")
    search = Frame("KnowledgeStore.search", f"{REPO}/agent/store/vector.py")
    embed = Frame("GeminiEmbedder.embed", f"{REPO}/agent/embeddings/gemini.py")
    assert stage(*HANDLER, retrieve, search, embed, *GEMINI_POST) == stages.EMBEDDING
    assert stage(*HANDLER, retrieve, search) == stages.RETRIEVAL


def test_a_generate_call_is_the_gemini_calls_and_its_prompt_the_prompts() -> None:
    complete = Frame("GeminiProvider.complete", f"{REPO}/agent/llm/gemini.py")
    rounds = Frame("GeminiProvider._rounds", f"{REPO}/agent/llm/gemini.py")
    assert stage(*HANDLER, complete, rounds, *GEMINI_POST) == stages.GEMINI
    message = Frame("Prompt.user_message", f"{REPO}/agent/prompts.py")
    assert stage(*HANDLER, complete, rounds, message) == stages.PROMPT
    body = Frame("generate_body", f"{REPO}/agent/llm/gemini.py")
    assert stage(*HANDLER, complete, rounds, body) == stages.PROMPT


def test_the_cache_key_claims_the_cleaning_of_the_question() -> None:
    key = Frame("AgentService._cache_key", f"{REPO}/agent/service.py")
    clean = Frame("clean", f"{REPO}/agent/prompts.py")
    assert stage(*HANDLER, key, clean) == stages.CACHE
    lookup = Frame("MemoryState.get_cached", f"{REPO}/agent/store/state.py")
    assert stage(*HANDLER, lookup) == stages.CACHE


def test_the_answer_model_is_the_answer_flows_and_the_request_model_the_parsings() -> None:
    pydantic = Frame("BaseModel.__init__", f"{SITE}/pydantic/main.py")
    assert stage(*HANDLER, pydantic) == stages.ANSWER
    handler = HANDLER[:-2]  # FastAPI's handler, before it calls the route
    assert stage(*handler, pydantic) == stages.PARSE


def test_a_response_written_through_the_middlewares_is_the_responses() -> None:
    response = Frame("Response.__call__", f"{SITE}/starlette/responses.py")
    passed = Frame("RequestContextMiddleware.__call__.<locals>.send_with_id", MIDDLEWARE[-1].file)
    send = Frame("RequestResponseCycle.send", f"{SITE}/uvicorn/protocols/http/httptools_impl.py")
    assert stage(*HANDLER[:-1], response, passed, send) == stages.RESPONSE
    assert stage(*HANDLER[:-1], response, passed) == stages.MIDDLEWARE
    body = Frame("answer_body", f"{REPO}/agent/api/routes/infer.py")
    assert stage(*HANDLER[:-1], body) == stages.RESPONSE


def test_the_middlewares_own_work_and_the_guards() -> None:
    observe = Frame("Histogram.observe", f"{SITE}/prometheus_client/metrics.py")
    assert stage(*MIDDLEWARE, observe) == stages.MIDDLEWARE
    admission = Frame("AdmissionControl.__call__", f"{REPO}/agent/api/admission.py")
    assert stage(*MIDDLEWARE, admission) == stages.ADMISSION
    dependency = Frame("guard", f"{REPO}/agent/api/deps.py")  # the agent of c63b5ca
    assert stage(
        *HANDLER[:-2], Frame("solve_dependencies", f"{SITE}/fastapi/x.py"), dependency
    ) == (stages.AUTH)
    assert stage(*MIDDLEWARE, Frame("V1Guard.__call__", f"{REPO}/agent/api/guard.py")) == (
        stages.AUTH
    )


def test_stacks_without_agent_code_fall_to_the_libraries() -> None:
    received = Frame("HttpToolsProtocol.data_received", f"{SITE}/uvicorn/protocols/http/h.py")
    assert stage(*MAIN, received) == stages.SERVER
    read = Frame("StreamProtocol.data_received", f"{SITE}/anyio/_backends/_asyncio.py")
    assert stage(*MAIN, read) == stages.GEMINI
    assert stage(*MAIN) == stages.LOOP
    assert stage(Frame("thread (12)", "")) == stages.OTHER


def test_a_chroma_thread_is_the_retrievals() -> None:
    thread = (
        Frame("Thread._bootstrap", f"{LIB}/threading.py"),
        Frame("_WorkItem.run", f"{LIB}/concurrent/futures/thread.py"),
        Frame("KnowledgeStore._run.<locals>.call", f"{REPO}/agent/store/vector.py"),
        Frame("RustBindingsAPI._query", f"{SITE}/chromadb/api/rust.py"),
    )
    assert stage(*thread) == stages.RETRIEVAL


def test_the_profile_apportions_the_cpu_by_share_and_tabulates_it() -> None:
    retrieval = (*HANDLER, Frame("KnowledgeStore.search", f"{REPO}/agent/store/vector.py"))
    samples = Samples(Counter({retrieval: 30, MAIN: 10}))
    profile = stages.profile("answer", samples, 8.0)
    assert profile.total == 40
    assert profile.share(stages.RETRIEVAL) == pytest.approx(0.75)
    assert profile.ms_per_request(stages.LOOP) == pytest.approx(2.0)
    columns, rows = stages.profile_table([profile, stages.profile("hit", Samples(Counter()), 1)])
    assert columns == ("stage", "answer: ms/req (share)", "hit: ms/req (share)")
    assert rows[0] == (stages.RETRIEVAL, "6.00 (75%)", "0.00 (0%)")  # in the request's order
    assert rows[-1][1:] == ("8.00 (40; 0 idle)", "1.00 (0; 0 idle)")


def test_threads_caught_waiting_are_left_out_of_the_shares() -> None:
    waiting = (
        Frame("Thread._bootstrap", f"{LIB}/threading.py"),
        Frame("_worker", f"{LIB}/concurrent/futures/thread.py"),
    )
    assert stage(*waiting) == stages.IDLE
    assert stage(*MAIN, Frame("Condition.wait", f"{LIB}/threading.py")) == stages.IDLE
    retrieval = (*HANDLER, Frame("KnowledgeStore.search", f"{REPO}/agent/store/vector.py"))
    profile = stages.profile("answer", Samples(Counter({retrieval: 30, waiting: 70})), 3.0)
    assert profile.total == 30 and profile.share(stages.RETRIEVAL) == 1.0

"""Where a request's CPU goes, by stage: each stack py-spy sampled in the agent's process
(devstack/perf/pyspy.py) is put in the stage of the request it was working on, and each stage's
share of the samples, times the CPU a request cost in the same run, is its CPU per request.

A stack's stage is that of its innermost frame a rule knows: a frame of the agent's own code (by
its module, and for a few modules by function), or of the framework where it does one thing
whoever called it (FastAPI's routing and validation, Starlette's responses, uvicorn's write of a
response). The libraries under the agent's code (httpx, pydantic, json) count for the agent's
frame that called them; only a stack without any agent frame (an event-loop callback: uvicorn
parsing a request, the socket reads of the HTTP client) falls to the libraries' own rules. Two
stages claim everything done beneath them, whatever it is: the embedding (its Gemini call
included) and the cache (its key cleans the question as the prompt does).

The rules read files and qualified function names that the agent of c63b5ca has too, so a profile
of an older agent (`--agent-from`) is comparable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack.perf.pyspy import Frame, Samples, Stack, recording

PARSE = "parse and validate (routing, body, pydantic)"
AUTH = "auth and rate limit"
ADMISSION = "admission"
CANCELLATION = "cancel on disconnect"
CACHE = "cache (key, look-up, store)"
EMBEDDING = "embedding (its Gemini call)"
RETRIEVAL = "retrieval (Chroma)"
PROMPT = "prompt (and the request body)"
GEMINI = "the Gemini call (generate)"
ANSWER = "answer flow (service, tools, the Answer)"
RESPONSE = "response (body, headers, the write)"
MIDDLEWARE = "middleware (request id, limits, metrics, log)"
OPERATIONS = "operations endpoints"
SERVER = "HTTP server (uvicorn: parsing, tasks)"
LOOP = "event loop (asyncio)"
OTHER = "other"
IDLE = "idle"  # a thread waiting, which py-spy does not always tell from one at work
# In the order of a request, for the tables.
STAGES = (
    PARSE,
    AUTH,
    ADMISSION,
    CANCELLATION,
    CACHE,
    EMBEDDING,
    RETRIEVAL,
    PROMPT,
    GEMINI,
    ANSWER,
    RESPONSE,
    MIDDLEWARE,
    OPERATIONS,
    SERVER,
    LOOP,
    OTHER,
)

_CACHE_FUNCTIONS = frozenset(
    {
        "cache_key",
        "_key_without_history",
        "normalize_query",
        "AgentService._cache_key",
        "_result_to_cache",
        "_result_from_cache",
    }
)
_PROMPT_FUNCTIONS = frozenset(
    {"generate_body", "text_content", "_system_instruction", "tool_declarations"}
)


@dataclass(frozen=True)
class Rule:
    """Frames whose file's path has `path` in it (and whose function `function` accepts) are
    `stage`."""

    path: str
    stage: str
    function: Callable[[str], bool] | None = None

    def matches(self, frame: Frame) -> bool:
        return self.path in frame.file and (self.function is None or self.function(frame.function))


def _in(names: frozenset[str]) -> Callable[[str], bool]:
    return lambda function: function in names or function.split(".")[0] in names


def _cached_answer(function: str) -> bool:
    return function.startswith("CachedAnswer.") or function in _CACHE_FUNCTIONS


# Stages that claim the work beneath their frames.
CLAIM_RULES = (
    Rule("/agent/embeddings/", EMBEDDING),
    Rule("/agent/store/state.py", CACHE),
    Rule("/agent/service.py", CACHE, _cached_answer),
)
# The agent's own code, first match wins; a file not named here (the app factory, the entry
# point, settings) names no stage: its frames are the outer ones of every stack.
AGENT_RULES = (
    Rule("/agent/api/guard.py", AUTH),
    Rule("/agent/api/deps.py", AUTH),  # the agent of c63b5ca: auth as a FastAPI dependency
    Rule("/agent/api/admission.py", ADMISSION),
    Rule("/agent/api/cancellation.py", CANCELLATION),
    Rule("/agent/api/middleware.py", MIDDLEWARE),
    Rule("/agent/logs.py", MIDDLEWARE),
    Rule("/agent/metrics.py", MIDDLEWARE),
    Rule("/agent/api/routes/infer.py", PARSE, lambda f: f == "check_query"),
    Rule("/agent/api/routes/infer.py", RESPONSE),
    Rule("/agent/api/routes/stream.py", RESPONSE),
    Rule("/agent/api/routes/health.py", OPERATIONS),
    Rule("/agent/api/schemas.py", PARSE),
    Rule("/agent/domain.py", PARSE),
    Rule("/agent/streaming.py", RESPONSE),
    Rule("/agent/service.py", RETRIEVAL, lambda f: f == "AgentService.retrieve"),
    Rule("/agent/service.py", ANSWER),
    Rule("/agent/tools.py", ANSWER),
    Rule("/agent/store/vector.py", RETRIEVAL),
    Rule("/agent/store/chroma_http.py", RETRIEVAL),
    Rule("/agent/prompts.py", PROMPT),
    Rule("/agent/llm/gemini.py", PROMPT, _in(_PROMPT_FUNCTIONS)),
    Rule("/agent/llm/gemini.py", GEMINI),
    Rule("/agent/llm/http.py", GEMINI),
    Rule("/agent/llm/pool.py", GEMINI),  # the agent of c63b5ca: httpx in shards
    Rule("/agent/llm/sse.py", GEMINI),
    Rule("/agent/llm/breaker.py", GEMINI),
    Rule("/agent/llm/offline.py", ANSWER),
)


def _uvicorn_send(function: str) -> bool:
    return function.endswith(".send") or ".send." in function


# The framework where it does one thing whoever called it: these win over the agent's frames
# above them (a response written by uvicorn is the response's, whichever middleware passed it on).
FRAMEWORK_RULES = (
    Rule("/starlette/responses.py", RESPONSE),
    Rule("/uvicorn/protocols/http/httptools_impl.py", RESPONSE, _uvicorn_send),
    Rule("/uvicorn/protocols/http/h11_impl.py", RESPONSE, _uvicorn_send),
    Rule("/fastapi/routing.py", PARSE),
    Rule("/fastapi/dependencies/utils.py", PARSE),
    Rule("/fastapi/_compat.py", PARSE),
    Rule("/starlette/routing.py", PARSE),
    Rule("/starlette/requests.py", PARSE),
    Rule("/starlette/middleware/exceptions.py", MIDDLEWARE),
    Rule("/starlette/middleware/errors.py", MIDDLEWARE),
    Rule("/fastapi/middleware/asyncexitstack.py", MIDDLEWARE),
)


def _library(fragment: str, stage: str) -> Callable[[Frame], str | None]:
    return lambda frame: stage if fragment in frame.file else None


# Only for stacks with no frame of the agent's: what the event loop runs outside any request's
# code, innermost first.
LIBRARY_RULES = (
    _library("/site-packages/httpx", GEMINI),  # httpx and httpx2 (the agent of c63b5ca)
    _library("/site-packages/httpcore", GEMINI),
    _library("/site-packages/h11/", GEMINI),
    _library("/site-packages/anyio/", GEMINI),  # the HTTP client's socket reads
    _library("/site-packages/google/genai/", GEMINI),
    _library("/site-packages/chromadb/", RETRIEVAL),
    _library("/site-packages/uvicorn/", SERVER),
    _library("/asyncio/", LOOP),
    _library("/selectors.py", LOOP),
)


def _agent_stage(frame: Frame) -> str | None:
    if "/agent/" not in frame.file:
        return None
    for rule in AGENT_RULES:
        if rule.matches(frame):
            return rule.stage
    return None


def _framework_stage(frame: Frame) -> str | None:
    for rule in FRAMEWORK_RULES:
        if rule.matches(frame):
            return rule.stage
    return None


def _first(rules: Iterable[Callable[[Frame], str | None]], stack: Stack) -> str | None:
    """The stage of the innermost frame any of `rules` knows."""
    for frame in reversed(stack):
        for rule in rules:
            stage = rule(frame)
            if stage is not None:
                return stage
    return None


def _rule(rule: Rule) -> Callable[[Frame], str | None]:
    return lambda frame: rule.stage if rule.matches(frame) else None


_CLAIMS = tuple(_rule(rule) for rule in CLAIM_RULES)


# Where threads wait: py-spy leaves out threads the OS says are asleep, but a thread woken a
# moment ago (for work, or for the GIL) is sampled where it waited. Left out of the shares.
IDLE_FRAMES = (
    Rule("/concurrent/futures/thread.py", IDLE, lambda f: f == "_worker"),
    Rule("/threading.py", IDLE, lambda f: f.endswith((".wait", ".acquire", ".join"))),
    Rule("/threading.py", IDLE, lambda f: f.endswith("._wait_for_tstate_lock")),
    Rule("/selectors.py", IDLE, lambda f: f.endswith(".select")),
    Rule("/queue.py", IDLE, lambda f: f.endswith(".get")),
)


def stage_of(stack: Stack) -> str:
    """The stage a sampled stack was working for, or IDLE."""
    if stack and any(rule.matches(stack[-1]) for rule in IDLE_FRAMES):
        return IDLE
    return (
        _first(_CLAIMS, stack)
        or _first((_framework_stage, _agent_stage), stack)
        or _first(LIBRARY_RULES, stack)
        or OTHER
    )


@dataclass(frozen=True)
class Profile:
    """The samples of one load, by stage, and the CPU a request cost in the same run."""

    name: str
    samples: dict[str, int]  # idle ones under IDLE, left out of the shares
    cpu_ms_per_request: float

    @property
    def total(self) -> int:
        """The samples at work."""
        return sum(n for stage, n in self.samples.items() if stage != IDLE)

    def share(self, stage: str) -> float:
        return self.samples.get(stage, 0) / self.total if self.total else 0.0

    def ms_per_request(self, stage: str) -> float:
        return self.share(stage) * self.cpu_ms_per_request


def profile(name: str, samples: Samples, cpu_ms_per_request: float) -> Profile:
    counted: Counter[str] = Counter()
    for stack, count in samples.stacks.items():
        counted[stage_of(stack)] += count
    return Profile(name, dict(counted), cpu_ms_per_request)


def profile_of(
    pid: int, folder: Path, name: str, cpu_ms_per_request: float, load: Callable[[], object]
) -> Profile:
    """Run `load` while py-spy samples the process `pid` (sampling slows it: the CPU per request
    to apportion is one measured without it, `cpu_ms_per_request`); the samples by stage."""
    with recording(pid, folder) as samples:
        load()
    return profile(name, samples, cpu_ms_per_request)


def profile_table(profiles: Iterable[Profile]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """A row per stage any profile has: its CPU ms per request and share, profile by profile."""
    profiles = list(profiles)
    columns = ("stage", *(f"{p.name}: ms/req (share)" for p in profiles))
    rows = [
        (stage, *(f"{p.ms_per_request(stage):.2f} ({p.share(stage):.0%})" for p in profiles))
        for stage in STAGES
        if any(p.samples.get(stage) for p in profiles)
    ]
    totals = (
        "all (CPU per request; samples at work, idle ones left out)",
        *(
            f"{p.cpu_ms_per_request:.2f} ({p.total}; {p.samples.get(IDLE, 0)} idle)"
            for p in profiles
        ),
    )
    return columns, [*rows, totals]

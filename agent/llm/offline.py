"""The offline provider: a deterministic extractive answerer. No key, no network.

It ranks the sentences of the retrieved passages by how many of the question's terms they
contain (rarer terms weigh more), and answers with the best few, each cited. It uses the
`error_budget` tool when the question asks for one, so tool calls work offline too.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Literal

from agent.embeddings.hashing import tokenize
from agent.llm.base import Completion, ToolCall
from agent.prompts import Prompt
from agent.tools import ToolContext, ToolRegistry

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`])|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_PERCENT = re.compile(r"(\d{1,2}(?:\.\d+)?)\s*%")
_DAYS = re.compile(r"(\d{1,3})\s*(?:-\s*)?(?:days?|d)\b")
_BUDGET_WORDS = ("error budget", "downtime", "allowed outage", "budget")

_HOW = re.compile(r"^\s*(how|what command|which command|steps?)\b", re.IGNORECASE)
MAX_SENTENCES = 3
# A "how do I" question wants the step to take: sentences with a command rank higher.
ACTIONABLE_BOOST = 1.5
MIN_SENTENCE_CHARS = 20

NO_SOURCES_ANSWER = "I found nothing in the knowledge base that answers this question."


_SUFFIXES = ("ments", "ment", "ings", "ing", "ers", "er", "ed", "es", "s")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A tiny suffix stripper, so that "deploy", "deploys" and "deployment" match."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


# Passages come from a fixed corpus, so the same sentences are split and stemmed again and
# again: caching both takes the ranking off the miss path's profile.
@lru_cache(maxsize=65536)
def _terms(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in tokenize(text))


@lru_cache(maxsize=16384)
def _sentences(text: str) -> tuple[str, ...]:
    out = []
    for raw in _SENTENCE_SPLIT.split(text):
        sentence = _LIST_MARK.sub("", raw).strip()
        if len(sentence) >= MIN_SENTENCE_CHARS and not sentence.startswith("#"):
            out.append(sentence)
    return tuple(out)


class OfflineProvider:
    name: Literal["offline"] = "offline"
    model = "extractive-v1"
    uses_history = False

    async def complete(self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext) -> Completion:
        tool_calls = await self._maybe_error_budget(prompt.query, tools, ctx)
        lines: list[str] = [self._describe_budget(call) for call in tool_calls if call.ok]
        picked = self._rank(prompt)
        cited = sorted({n for n, _ in picked})
        if picked:
            lines.append("From the runbooks:")
            lines.extend(f"- {sentence} [{n}]" for n, sentence in picked)
        elif not lines:
            lines.append(NO_SOURCES_ANSWER)
        return Completion(
            text="\n".join(lines), model=self.model, tool_calls=tool_calls, cited=cited
        )

    async def aclose(self) -> None:
        return None

    def _rank(self, prompt: Prompt) -> list[tuple[int, str]]:
        terms = _terms(prompt.query)
        if not terms or not prompt.passages:
            return []
        wants_steps = bool(_HOW.match(prompt.query))
        candidates = [
            (n, position, sentence, _terms(sentence))
            for n, passage in enumerate(prompt.passages, start=1)
            for position, sentence in enumerate(_sentences(passage.text))
        ]
        # Inverse document frequency over the candidate sentences: rare terms decide.
        df = {t: sum(1 for *_, words in candidates if t in words) for t in terms}
        idf = {t: math.log(1 + len(candidates) / df[t]) for t in terms if df[t]}
        scored = []
        for n, position, sentence, words in candidates:
            matched = terms & words
            if not matched:
                continue
            score = sum(idf[t] for t in matched) * prompt.passages[n - 1].score
            # Prefer short, dense sentences over long ones that match by accident.
            score /= math.log(len(words) + 2)
            if wants_steps and "`" in sentence:
                score *= ACTIONABLE_BOOST
            scored.append((score, n, position, sentence))
        scored.sort(key=lambda item: (-item[0], item[1], item[2]))
        best, seen = [], set()
        for _, n, position, sentence in scored:
            if sentence not in seen:
                seen.add(sentence)
                best.append((n, position, sentence))
            if len(best) == MAX_SENTENCES:
                break
        # Read in document order, so that steps keep their sequence.
        best.sort(key=lambda item: (item[0], item[1]))
        return [(n, sentence) for n, _, sentence in best]

    async def _maybe_error_budget(
        self, query: str, tools: ToolRegistry, ctx: ToolContext
    ) -> list[ToolCall]:
        lowered = query.lower()
        percent = _PERCENT.search(query)
        if percent is None or not any(word in lowered for word in _BUDGET_WORDS):
            return []
        days = _DAYS.search(lowered)
        args: dict[str, object] = {"slo_percent": float(percent.group(1))}
        if days:
            args["window_days"] = int(days.group(1))
        outcome = await tools.call("error_budget", args, ctx)
        return [ToolCall(name="error_budget", arguments=args, result=outcome.result, ok=outcome.ok)]

    @staticmethod
    def _describe_budget(call: ToolCall) -> str:
        r = call.result
        return (
            f"An availability SLO of {r['slo_percent']}% over {r['window_days']} days allows "
            f"{r['allowed_downtime_minutes']} minutes of downtime (error_budget tool)."
        )

"""The offline provider: a deterministic extractive answerer. No key, no network.

It answers from the best section retrieved (the first passage's; the relevance floor has
already dropped the passages that do not answer the question): the section's opening sentence,
which says what the problem is, then the sentences of that section that share the question's
words (rarer words weigh more) or give a command to run, read in the runbook's order and each
cited. Other sections stay in the sources, uncited: their sentences would not fit the question.
It uses the `error_budget` tool when the question asks for one, so tool calls work offline too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from agent.domain import Passage
from agent.embeddings.hashing import tokenize
from agent.llm.base import Completion, ToolCall
from agent.prompts import Prompt
from agent.tools import ToolContext, ToolRegistry

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`])|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_PERCENT = re.compile(r"(\d{1,2}(?:\.\d+)?)\s*%")
_DAYS = re.compile(r"(\d{1,3})\s*(?:-\s*)?(?:days?|d)\b")
_BUDGET_WORDS = ("error budget", "downtime", "allowed outage", "budget")
_COMMAND = re.compile(
    r"`(?:kubectl|kubeadm|curl|openssl|docker|cmctl|systemctl|journalctl|invoke) "
)

_HOW = re.compile(r"^\s*(how|what command|which command|steps?)\b", re.IGNORECASE)
# The opening sentence and up to this many more, from the best section.
MAX_SENTENCES = 5
# A sentence that gives a command to run weighs as much as one rare word of the question; for a
# "how do I" question, which wants the step to take, more.
COMMAND_WEIGHT = 1.0
ACTIONABLE_BOOST = 1.5
MIN_SENTENCE_CHARS = 20

# The answer when no passage answers the question (the service gives it too, below the floor).
NOT_COVERED_ANSWER = (
    "The runbooks do not cover this question, so there is nothing to cite. Ask about the error "
    "message, resource or command you see, or add a runbook that answers it."
)
NO_SOURCES_ANSWER = NOT_COVERED_ANSWER


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


@dataclass(frozen=True)
class _Sentence:
    n: int  # the passage's number in the prompt
    order: tuple[int, int]  # (chunk index, position): the runbook's order
    text: str
    words: frozenset[str]


def _best_section(passages: list[Passage]) -> list[_Sentence]:
    """The sentences of the first passage's section, from every retrieved chunk of it, in the
    runbook's order, each once (consecutive chunks overlap)."""
    first = passages[0]
    sentences: list[_Sentence] = []
    seen: set[str] = set()
    chunks = [
        (n, p)
        for n, p in enumerate(passages, start=1)
        if (p.document_id, p.section) == (first.document_id, first.section)
    ]
    for n, passage in sorted(chunks, key=lambda item: _chunk_index(item[1])):
        for position, sentence in enumerate(_sentences(passage.text)):
            if sentence not in seen:
                seen.add(sentence)
                order = (_chunk_index(passage), position)
                sentences.append(_Sentence(n, order, sentence, _terms(sentence)))
    return sentences or [_Sentence(1, (0, 0), first.text.strip(), _terms(first.text))]


def _chunk_index(passage: Passage) -> int:
    """Chunk ids end in their index in the document (`<document>::<version>::<index>`)."""
    tail = passage.chunk_id.rsplit("::", 1)[-1]
    return int(tail) if tail.isdigit() else 0


@lru_cache(maxsize=16384)
def _sentences(text: str) -> tuple[str, ...]:
    """The units an answer quotes: a list item whole (its second sentence needs its first),
    and each sentence of a paragraph."""
    out = []
    for line in text.splitlines():
        item = _LIST_MARK.match(line)
        pieces = [line[item.end() :]] if item else _SENTENCE_SPLIT.split(line)
        for piece in pieces:
            sentence = piece.strip()
            # Headings, and lines that only lead into a list ("To find out why:"), say nothing.
            if (
                len(sentence) >= MIN_SENTENCE_CHARS
                and not sentence.startswith("#")
                and not sentence.endswith(":")
            ):
                out.append(sentence)
    return tuple(out)


class OfflineProvider:
    name: Literal["offline"] = "offline"
    model = "extractive-v2"
    uses_history = False

    async def complete(self, prompt: Prompt, tools: ToolRegistry, ctx: ToolContext) -> Completion:
        tool_calls = await self._maybe_error_budget(prompt.query, tools, ctx)
        lines: list[str] = [self._describe_budget(call) for call in tool_calls if call.ok]
        picked = self._rank(prompt)
        cited = sorted({n for n, _ in picked})
        if picked:
            first = prompt.passages[0]
            where = f"{first.title} — {first.section}" if first.section else first.title
            lines.append(f"From the runbooks ({where}):")
            lines.extend(f"- {sentence} [{n}]" for n, sentence in picked)
        elif not lines:
            lines.append(NO_SOURCES_ANSWER)
        return Completion(
            text="\n".join(lines), model=self.model, tool_calls=tool_calls, cited=cited
        )

    async def aclose(self) -> None:
        return None

    def _rank(self, prompt: Prompt) -> list[tuple[int, str]]:
        if not prompt.passages:
            return []
        candidates = _best_section(prompt.passages)
        terms = _terms(prompt.query)
        # Inverse document frequency over the section's sentences: its rare words decide.
        df = {t: sum(1 for c in candidates if t in c.words) for t in terms}
        idf = {t: math.log(1 + len(candidates) / df[t]) for t in terms if df[t]}
        command_weight = COMMAND_WEIGHT * (ACTIONABLE_BOOST if _HOW.match(prompt.query) else 1)
        opening, rest = candidates[0], candidates[1:]

        def weight(c: _Sentence) -> float:
            # Short, dense sentences over long ones that match by accident.
            matched = sum(idf[t] for t in terms & c.words) / math.log(len(c.words) + 2)
            return matched + (command_weight if _COMMAND.search(c.text) else 0.0)

        scored = sorted(((weight(c), c) for c in rest), key=lambda item: (-item[0], item[1].order))
        picked = [opening, *(c for w, c in scored[: MAX_SENTENCES - 1] if w > 0)]
        # Read in the runbook's order, so that steps keep their sequence.
        return [(c.n, c.text) for c in sorted(picked, key=lambda c: c.order)]

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

"""Hits → a budgeted prompt → a streamed answer with numbered citations.

The prompt never overflows the model's context window: passages go in by rank
until the next would not fit, and the rendered prompt is counted with the
model's own tokenizer before it is sent. When no passage is relevant enough,
the answer says so without calling the model.

Small models often forget to cite. A sentence that ends without a ``[n]`` gets
one when a single passage supports most of its content words, so every claim
that came from a passage points at it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .config import Settings
from .documents import Answer, Budget, Citation, Hit, Usage
from .providers.base import ChatModel, Message
from .retrieval import STOPWORDS

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources in the user's message. "
    "After each sentence, cite the source it comes from like [1] or [2]. "
    "If the sources do not answer the question, say that you don't know."
)
NOTHING_FOUND = "I couldn't find anything about that in your documents, so I can't answer it."
_MARKER = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"\w+")
# A sentence ends at . ! or ? before whitespace (not inside "3.10" or a URL) or at a blank line.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?!\s|$)|\n(?![ \t]*\n))+(?:[.!?]+(?=\s|$))?")
# An answer sentence with the markers that follow it: "It rotates nightly. [1] [2]"
_CLAIM = re.compile(r"(?:[^.!?]|[.!?](?!\s|$))+(?:[.!?]+(?=\s|$)(?:\s*\[\d+\])*|$)")
ATTRIBUTION_MIN_OVERLAP = 0.5
ATTRIBUTION_MIN_WORDS = 4


@dataclass
class Prompt:
    messages: list[Message]
    hits: list[Hit]
    budget: Budget
    prompt_tokens: int
    warnings: list[str]


def format_passage(number: int, hit: Hit) -> str:
    return f"[{number}] {hit.title} ({hit.location})\n{hit.text.strip()}"


def build_prompt(
    question: str, hits: Sequence[Hit], model: ChatModel, settings: Settings
) -> Prompt:
    window = min(settings.context_window, model.context_window)
    reserve = settings.answer_tokens
    system = Message("system", SYSTEM_PROMPT)
    system_tokens = model.count_messages([system])
    warnings: list[str] = []
    # A question may take half of the prompt's room at most: the passages must fit too.
    question_limit = (window - reserve - system_tokens) // 2
    question, question_tokens, truncated = _fit_question(question, model, question_limit)
    if truncated:
        warnings.append(
            f"the question was truncated to {question_tokens} tokens to fit the context window"
        )
    room = window - reserve - system_tokens - question_tokens - 16
    chosen, costs = [], []
    for hit in hits:
        cost = model.count_tokens(format_passage(len(chosen) + 1, hit)) + 2
        if cost > room:
            break  # the rest rank lower: drop them rather than reorder relevance
        chosen.append(hit)
        costs.append(cost)
        room -= cost
    messages = _messages(question, chosen)
    total = model.count_messages(messages)
    while chosen and total + reserve > window:  # the estimate was off: drop the least relevant
        chosen.pop()
        costs.pop()
        messages = _messages(question, chosen)
        total = model.count_messages(messages)
    budget = Budget(
        context_window=window, system_tokens=total - question_tokens - sum(costs),
        question_tokens=question_tokens, passage_tokens=costs, answer_reserve=reserve,
        dropped_passages=len(hits) - len(chosen), question_truncated=truncated,
    )  # fmt: skip
    return Prompt(messages, chosen, budget, total, warnings)


def _messages(question: str, hits: Sequence[Hit]) -> list[Message]:
    sources = "\n\n".join(format_passage(n, hit) for n, hit in enumerate(hits, start=1))
    user = f"Sources:\n\n{sources}\n\nQuestion: {question}"
    return [Message("system", SYSTEM_PROMPT), Message("user", user)]


def _fit_question(question: str, model: ChatModel, limit: int) -> tuple[str, int, bool]:
    tokens = model.count_tokens(f"Question: {question}")
    if tokens <= limit:
        return question, tokens, False
    truncate = getattr(model, "truncate", None)
    shorter = (
        truncate(question, max(limit - 4, 1)) if truncate else question[: max(limit - 4, 1) * 3]
    )
    return shorter, model.count_tokens(f"Question: {shorter}"), True


class AnswerStream:
    """Iterate for the answer's text as it is generated; then ``.answer`` holds the result."""

    def __init__(self, question: str, hits: Sequence[Hit], model: ChatModel, settings: Settings,
                 history: Sequence[Message] = ()) -> None:  # fmt: skip
        self.question = question
        self.model = model
        self.settings = settings
        relevant = [h for h in hits if (h.cosine or 0.0) >= settings.min_relevance][
            : settings.top_k
        ]
        self.prompt = build_prompt(question, relevant, model, settings) if relevant else None
        self.answer: Answer | None = None
        self._parts: list[str] = []

    def __iter__(self) -> Iterator[str]:
        if self.prompt is None or not self.prompt.hits:
            yield NOTHING_FOUND
            warnings = self.prompt.warnings if self.prompt else []
            self.answer = Answer(
                self.question, NOTHING_FOUND, [], [], None, Usage(), self.model.model_id,
                refused=True, warnings=warnings,
            )  # fmt: skip
            return
        sentence: list[str] = []
        deltas = self.model.stream(
            self.prompt.messages, self.settings.answer_tokens, self.settings.temperature
        )
        for delta in deltas:
            yield from self._split_at_sentence_ends(delta, sentence)
        marker = self._marker_for("".join(sentence))
        if marker:
            yield self._emit(marker)
        self.answer = self._finish()

    def _split_at_sentence_ends(self, delta: str, sentence: list[str]) -> Iterator[str]:
        start = 0
        for i, char in enumerate(delta):
            previous = delta[i - 1] if i > 0 else ("".join(sentence)[-1:] or "")
            if char.isspace() and previous in ".!?":
                if i > start:
                    sentence.append(delta[start:i])
                    yield self._emit(delta[start:i])
                start = i
                marker = self._marker_for("".join(sentence))
                sentence.clear()
                if marker:
                    yield self._emit(marker)
        if start < len(delta):
            sentence.append(delta[start:])
            yield self._emit(delta[start:])

    def _emit(self, text: str) -> str:
        self._parts.append(text)
        return text

    def _marker_for(self, sentence: str) -> str:
        """`` [n]`` when an uncited sentence is supported by passage n, else ``""``."""
        assert self.prompt is not None
        if any(1 <= int(m) <= len(self.prompt.hits) for m in _MARKER.findall(sentence)):
            return ""
        words = _content_words(sentence)
        if len(words) < ATTRIBUTION_MIN_WORDS:
            return ""
        overlaps = [len(words & _content_words(h.text)) / len(words) for h in self.prompt.hits]
        best = max(range(len(overlaps)), key=overlaps.__getitem__)
        return f" [{best + 1}]" if overlaps[best] >= ATTRIBUTION_MIN_OVERLAP else ""

    def _finish(self) -> Answer:
        assert self.prompt is not None
        text = "".join(self._parts).strip()
        numbers = [int(m) for m in _MARKER.findall(text)]
        warnings = list(self.prompt.warnings)
        invalid = sorted({n for n in numbers if not 1 <= n <= len(self.prompt.hits)})
        if invalid:
            warnings.append(f"the model cited {invalid}, which are not among the sources")
        cited = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(self.prompt.hits)))
        citations = [_citation(n, self.prompt.hits[n - 1], text, self.question) for n in cited]
        usage = Usage(self.prompt.prompt_tokens, self.model.count_tokens(text))
        return Answer(self.question, text, citations, list(self.prompt.hits), self.prompt.budget,
                      usage, self.model.model_id, refused=False, warnings=warnings)  # fmt: skip


def _content_words(text: str) -> set[str]:
    return {
        w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 2 and w not in STOPWORDS
    }


def _citation(number: int, hit: Hit, answer: str, question: str = "") -> Citation:
    """The quoted span: the passage sentence that best supports the first answer sentence
    citing [number] — most of the words that sentence adds to the question (a passage
    sentence that merely repeats the question supports nothing), then most words overall."""
    claims = [m.group() for m in _CLAIM.finditer(answer) if f"[{number}]" in m.group()]
    answer_words = _content_words(claims[0] if claims else answer)
    new_words = answer_words - _content_words(question)
    best, best_overlap = None, (-1, -1)
    for match in _SENTENCE.finditer(hit.text):
        words = _content_words(match.group())
        overlap = (len(words & new_words), len(words & answer_words))
        if overlap > best_overlap and match.group().strip():
            best, best_overlap = match, overlap
    if best is None:
        return Citation(number, hit, hit.text.strip(), hit.start, hit.end)
    start, end = best.start(), best.end()
    first_line = hit.text[start:end].lstrip().split("\n", 1)
    if (
        first_line[0].startswith("#") and len(first_line) == 2
    ):  # a Markdown heading: in the location already
        start = hit.text.index(first_line[1], start)
    quote = hit.text[start:end].strip()
    offset = hit.start + start + (len(hit.text[start:end]) - len(hit.text[start:end].lstrip()))
    return Citation(number, hit, quote, offset, offset + len(quote))

"""The typed records that flow through the pipeline, in pipeline order:

Block, ParsedDocument   what a parser makes of one file
Document                a parsed document with its source and content hash
Chunk                   a token-bounded span of a document, ready to embed
Hit                     a chunk found by retrieval, with its scores
Citation, Answer        what answering returns
AgentStep               one tool call of an agent-mode answer
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The time range a transcript passage's heading ends with (parsers/transcript.py).
_TIME_RANGE = re.compile(r"(\d+):(\d\d):(\d\d)-(\d+):(\d\d):(\d\d)$")


def time_range(label: str) -> tuple[int, int] | None:
    """The (start, end) seconds a transcript passage's label ends with:
    ``Alice 00:01:02-00:01:35`` -> (62, 95)."""
    match = _TIME_RANGE.search(label)
    if match is None:
        return None
    h1, m1, s1, h2, m2, s2 = (int(g) for g in match.groups())
    return h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2


@dataclass(frozen=True)
class Block:
    """A structural unit of a document: a paragraph, heading body, code block or list.

    ``start``/``end`` are character offsets into the document's text, so a citation
    can point at the exact span.
    """

    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    kind: str = "text"


@dataclass
class ParsedDocument:
    text: str
    blocks: list[Block]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Parts a parser left out, as (location, reason): reported, the rest is kept.
    problems: list[tuple[str, str]] = field(default_factory=list)
    # Who may read it, as a connector knows: see Document.access.
    access: tuple[str, ...] | None = None


@dataclass
class Document:
    source: str
    title: str
    text: str
    blocks: list[Block]
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # Parts left out while loading, as (location, reason): a message with an unknown
    # charset, an attachment that failed to parse. Reported as failures; the rest is kept.
    problems: list[tuple[str, str]] = field(default_factory=list)
    # Who may read it: None, everyone who reads the collection; a tuple, only the holders
    # of these identities (e-mail addresses, group:NAME, aliases such as slack:U123) —
    # nobody, when empty, but unrestricted callers (the workspace owner, service keys).
    access: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Chunk:
    ord: int
    start: int
    end: int
    text: str
    n_tokens: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass
class Hit:
    chunk_id: int
    document_id: int
    collection: str
    source: str
    title: str
    text: str
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    cosine: float | None = None
    # The document's metadata: a connector's link (url), authors, times, principals…
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str | None:
        """A link a person can follow, when the source has one."""
        url = self.metadata.get("url")
        if url:
            return str(url)
        return self.source if self.source.startswith(("http://", "https://")) else None

    @property
    def seconds(self) -> tuple[int, int] | None:
        """A transcript or recording passage's start and end, in seconds from the start."""
        if "transcript_format" not in self.metadata or not self.heading_path:
            return None
        return time_range(self.heading_path[-1])

    @property
    def location(self) -> str:
        """Where in the source this passage sits, for a person to follow."""
        parts = []
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading_path:
            parts.append(" > ".join(self.heading_path))
        parts.append(f"chars {self.start}-{self.end}")
        return ", ".join(parts)


@dataclass
class Citation:
    """Source ``number`` as the answer cites it; ``quote`` is the span that supports it."""

    number: int
    hit: Hit
    quote: str
    quote_start: int
    quote_end: int


@dataclass
class Budget:
    """How the prompt's tokens were spent; ``total <= context_window`` always."""

    context_window: int
    system_tokens: int
    question_tokens: int
    passage_tokens: list[int]
    answer_reserve: int
    dropped_passages: int = 0
    question_truncated: bool = False

    @property
    def total(self) -> int:
        return (
            self.system_tokens
            + self.question_tokens
            + sum(self.passage_tokens)
            + self.answer_reserve
        )


@dataclass
class Usage:
    """The answer call's tokens as the provider reported them (``estimated`` when it did
    not: the call was stopped before its end)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False


@dataclass
class AgentStep:
    """One tool call of an agent-mode answer (``agent.py``): what the model asked for,
    the passage numbers it got back, and the tokens of the model turn that made the call
    (a turn calling several tools is counted on its first)."""

    tool: str  # search | fetch | answer, or the unknown name the model used
    arguments: dict[str, Any]  # as the model wrote them ({} when they were no JSON object)
    passages: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""  # what the model was told went wrong ("" when the call worked)


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    hits: list[Hit]
    budget: Budget | None
    usage: Usage
    model: str
    refused: bool = False
    warnings: list[str] = field(default_factory=list)
    # The model's own text was unsupported, so the answer quotes the best passage.
    extractive: bool = False
    finish_reason: str = "stop"  # stop | length | tool_calls | cancelled
    target: str = ""  # "provider:model" that answered ("" when no model was called)
    # Every model call made for the answer: router.Attempt records (fallbacks included).
    attempts: list[Any] = field(default_factory=list)
    # Tools the model called instead of (or after) answering: providers.base.ToolCall,
    # for the client to run (an API request that offered tools).
    tool_calls: list[Any] = field(default_factory=list)
    # Agent mode: every tool call the model made on the way to the answer, in order.
    steps: list[AgentStep] = field(default_factory=list)

"""Split a document into token-bounded chunks that follow its structure.

Blocks with the same heading path and page form a section; a chunk never crosses
sections, so its heading path and page are exact. Inside a section, blocks are
packed greedily up to ``max_tokens``; a block too long on its own is cut at
sentences, and a sentence too long at token boundaries. Consecutive chunks share
up to ``overlap`` tokens of whole units.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from .documents import Block, Chunk, Document

# Counts tokens of many strings at once; returns, per string, the end offsets of its tokens.
TokenOffsets = Callable[[Sequence[str]], list[list[int]]]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    n_tokens: int


def chunk_document(
    document: Document, token_offsets: TokenOffsets, max_tokens: int, overlap: int
) -> list[Chunk]:
    chunks: list[Chunk] = []
    sections = groupby(document.blocks, key=lambda b: (b.heading_path, b.page))
    for (heading_path, page), blocks in sections:
        units = _units(document.text, list(blocks), token_offsets, max_tokens)
        for start, end, n_tokens in _pack(units, max_tokens, overlap):
            chunks.append(
                Chunk(
                    len(chunks), start, end, document.text[start:end], n_tokens, heading_path, page
                )
            )
    return chunks


def _units(
    text: str, blocks: list[Block], token_offsets: TokenOffsets, max_tokens: int
) -> list[_Unit]:
    """Blocks as units, with over-long blocks cut into sentences and then token windows."""
    counts = token_offsets([text[b.start : b.end] for b in blocks])
    units: list[_Unit] = []
    for block, ends in zip(blocks, counts, strict=True):
        if len(ends) <= max_tokens:
            units.append(_Unit(block.start, block.end, len(ends)))
        else:
            units.extend(_split_long(text, block.start, block.end, token_offsets, max_tokens))
    return units


def _split_long(
    text: str, start: int, end: int, token_offsets: TokenOffsets, max_tokens: int
) -> list[_Unit]:
    spans = _sentence_spans(text, start, end)
    counts = token_offsets([text[s:e] for s, e in spans])
    units = []
    for (s, e), ends in zip(spans, counts, strict=True):
        if len(ends) <= max_tokens:
            units.append(_Unit(s, e, len(ends)))
            continue
        for first in range(0, len(ends), max_tokens):
            window = ends[first : first + max_tokens]
            window_start = s if first == 0 else s + ends[first - 1]
            units.append(_Unit(window_start, s + window[-1], len(window)))
    return units


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, cursor = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.start() > cursor:
            spans.append((cursor, match.start()))
        cursor = match.end()
    if end > cursor:
        spans.append((cursor, end))
    return spans


def _pack(units: list[_Unit], max_tokens: int, overlap: int) -> list[tuple[int, int, int]]:
    """Greedy packing into (start, end, tokens) windows with unit-level overlap."""
    windows: list[tuple[int, int, int]] = []
    current: list[_Unit] = []
    tokens = 0
    for unit in units:
        if current and tokens + unit.n_tokens > max_tokens:
            windows.append((current[0].start, current[-1].end, tokens))
            current = _overlap_tail(current, overlap, max_tokens - unit.n_tokens)
            tokens = sum(u.n_tokens for u in current)
        current.append(unit)
        tokens += unit.n_tokens
    if current:
        windows.append((current[0].start, current[-1].end, tokens))
    return windows


def _overlap_tail(units: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    tail: list[_Unit] = []
    budget = min(overlap, room)
    for unit in reversed(units):
        if unit.n_tokens > budget:
            break
        tail.insert(0, unit)
        budget -= unit.n_tokens
    return tail

"""Split a document into token-bounded chunks that follow its structure.

Blocks with the same heading path and page form a section; a chunk never crosses
sections, so its heading path and page are exact. Inside a section, blocks are
packed greedily up to ``max_tokens``; a block too long on its own is cut at
sentences, and a sentence too long at token boundaries. Consecutive chunks share
up to ``overlap`` tokens of whole units.

Characters are bounded too: a chunk holds at most ``CHARS_PER_TOKEN`` characters per
token it may hold (a 5 MB string without spaces is one "unknown" token to a WordPiece
tokenizer, and must still become many chunks), and a huge block is cut into pieces
before it is tokenized, so memory follows the piece, not the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from .documents import Block, Chunk, Document

# Counts tokens of many strings at once; returns, per string, the end offsets of its tokens.
TokenOffsets = Callable[[Sequence[str]], list[list[int]]]

CHARS_PER_TOKEN = 16  # generous: English averages ~4, long identifiers and URLs more
PIECE_CHUNKS = 32  # a block is tokenized in pieces of at most this many chunks' characters
TOKENIZE_BATCH = 64  # blocks or pieces counted per tokenizer call
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
    max_chars = max_tokens * CHARS_PER_TOKEN
    spans = [
        piece for b in blocks for piece in _pieces(text, b.start, b.end, max_chars * PIECE_CHUNKS)
    ]
    units: list[_Unit] = []
    for batch in range(0, len(spans), TOKENIZE_BATCH):  # the tokenizer's output stays small
        group = spans[batch : batch + TOKENIZE_BATCH]
        counts = token_offsets([text[s:e] for s, e in group])
        for (start, end), ends in zip(group, counts, strict=True):
            if len(ends) <= max_tokens and end - start <= max_chars:
                units.append(_Unit(start, end, len(ends)))
            else:
                units.extend(_split_long(text, start, end, token_offsets, max_tokens))
    return units


def _pieces(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """``start..end`` in pieces of at most ``limit`` characters, cut after whitespace
    where there is some in the second half of a piece."""
    pieces = []
    while end - start > limit:
        cut = start + limit
        space = max(
            text.rfind(" ", start + limit // 2, cut), text.rfind("\n", start + limit // 2, cut)
        )
        cut = space + 1 if space > 0 else cut
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def _split_long(
    text: str, start: int, end: int, token_offsets: TokenOffsets, max_tokens: int
) -> list[_Unit]:
    max_chars = max_tokens * CHARS_PER_TOKEN
    spans = _sentence_spans(text, start, end)
    counts = token_offsets([text[s:e] for s, e in spans])
    units = []
    for (s, e), ends in zip(spans, counts, strict=True):
        if len(ends) <= max_tokens and e - s <= max_chars:
            units.append(_Unit(s, e, len(ends)))
            continue
        for first in range(0, len(ends), max_tokens):
            window = ends[first : first + max_tokens]
            window_start = s if first == 0 else s + ends[first - 1]
            window_end = e if first + max_tokens >= len(ends) else s + window[-1]
            units.extend(
                _char_windows(text, window_start, window_end, len(window), max_chars, token_offsets)
            )
    return units


def _char_windows(
    text: str, start: int, end: int, n_tokens: int, max_chars: int, token_offsets: TokenOffsets
) -> list[_Unit]:
    """A token window, cut again where it holds too many characters for its tokens."""
    if end - start <= max_chars:
        return [_Unit(start, end, n_tokens)]
    pieces = _pieces(text, start, end, max_chars)
    counts = token_offsets([text[s:e] for s, e in pieces])
    return [_Unit(s, e, max(1, len(ends))) for (s, e), ends in zip(pieces, counts, strict=True)]


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
    max_chars = max_tokens * CHARS_PER_TOKEN  # bounded in characters too
    windows: list[tuple[int, int, int]] = []
    current: list[_Unit] = []
    tokens = 0
    for unit in units:
        too_long = bool(current) and unit.end - current[0].start > max_chars
        if current and (tokens + unit.n_tokens > max_tokens or too_long):
            windows.append((current[0].start, current[-1].end, tokens))
            current = _overlap_tail(current, overlap, max_tokens - unit.n_tokens)
            if current and unit.end - current[0].start > max_chars:
                current = []  # no room for an overlap within the character bound
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

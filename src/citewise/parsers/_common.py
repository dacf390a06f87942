"""Helpers the parsers share: decoding text files and splitting paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

import charset_normalizer

from ..documents import Block
from ..errors import ParseError

_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def read_text(path: Path) -> str:
    """Read a text file as UTF-8 (with or without BOM), else in the encoding
    charset-normalizer finds (cp1252, Latin-1, Shift-JIS, …)."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ParseError("binary content in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return guess_decoding(data)


def guess_decoding(data: bytes) -> str:
    """Bytes that are not UTF-8, decoded as charset-normalizer judges best. Short Western
    text fits several code pages equally well; of those, cp1252 (which Windows writes and
    which reads Latin-1 the same) wins the tie. Undetectable bytes: cp1252, replacing."""
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        return data.decode("cp1252", errors="replace")
    best = matches[0]
    tied = (
        m for m in matches if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01
    )
    return str(next((m for m in tied if "cp1252" in m.could_be_from_charset), best))


def paragraph_blocks(
    text: str,
    start: int = 0,
    end: int | None = None,
    heading_path: tuple[str, ...] = (),
    page: int | None = None,
    kind: str = "text",
) -> list[Block]:
    """Blocks for each blank-line-separated paragraph of ``text[start:end]``."""
    end = len(text) if end is None else end
    blocks = []
    cursor = start
    for match in _BLANK_LINES.finditer(text, start, end):
        blocks.extend(_trimmed_block(text, cursor, match.start(), heading_path, page, kind))
        cursor = match.end()
    blocks.extend(_trimmed_block(text, cursor, end, heading_path, page, kind))
    return blocks


def _trimmed_block(
    text: str, start: int, end: int, heading_path: tuple[str, ...], page: int | None, kind: str
) -> list[Block]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [Block(start, end, heading_path, page, kind)] if end > start else []


def trimmed_end(text: str, end: int, start: int = 0) -> int:
    """``end`` moved back over trailing whitespace, not before ``start``. It scans back
    from ``end``: ``len(text[:end].rstrip())`` copies the text up to each block, which
    made a 40 MB Markdown file's parse quadratic (minutes instead of seconds)."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def line_offsets(text: str) -> list[int]:
    """Character offset at which each line starts, plus one past the end."""
    offsets = [0]
    for match in re.finditer("\n", text):
        offsets.append(match.end())
    offsets.append(len(text))
    return offsets


class TextBuilder:
    """Builds a document's text from extracted pieces, recording each as a block."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    def add(
        self,
        piece: str,
        heading_path: tuple[str, ...] = (),
        page: int | None = None,
        kind: str = "text",
    ) -> None:
        piece = piece.strip()
        if not piece:
            return
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        self.blocks.append(Block(self._length, self._length + len(piece), heading_path, page, kind))
        self._parts.append(piece)
        self._length += len(piece)

    @property
    def text(self) -> str:
        return "".join(self._parts)

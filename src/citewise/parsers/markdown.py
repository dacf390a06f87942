"""Markdown through markdown-it-py: headings become the heading path of what follows."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..documents import Block, ParsedDocument
from ._common import line_offsets, read_text, trimmed_end

SUFFIXES = (".md", ".markdown", ".mdx")
_PARSER = MarkdownIt("commonmark").enable("table")


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    blocks, title = markdown_blocks(text)
    return ParsedDocument(text=text, blocks=blocks, title=title or path.stem)


def markdown_blocks(text: str) -> tuple[list[Block], str | None]:
    tokens = _PARSER.parse(text)
    offsets = line_offsets(text)
    headings: list[tuple[int, str]] = []  # (level, title) stack
    blocks: list[Block] = []
    title = None
    for i, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        kind = "text"
        if token.type == "heading_open":
            level = int(token.tag[1:])
            heading = plain_text(tokens[i + 1])
            headings = [h for h in headings if h[0] < level] + [(level, heading)]
            title = title or (heading if level == 1 else None)
            kind = "heading"
        elif token.type in ("fence", "code_block"):
            kind = "code"
        start_line, end_line = token.map
        start, end = offsets[start_line], offsets[min(end_line, len(offsets) - 1)]
        end = trimmed_end(text, end, start)
        if end > start:
            blocks.append(Block(start, end, tuple(h for _, h in headings), None, kind))
    return blocks, title


def plain_text(inline: Token) -> str:
    """An inline token's text without its markup: ``**📊 Research**`` is "📊 Research",
    ``[the guide](x.md)`` "the guide" (headings in heading paths and titles)."""
    pieces = [
        " " if child.type in ("softbreak", "hardbreak") else child.content
        for child in inline.children or []
        if child.type in ("text", "code_inline", "image", "softbreak", "hardbreak")
    ]
    return " ".join("".join(pieces).split()) if inline.children else inline.content.strip()

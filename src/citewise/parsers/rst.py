"""reStructuredText: docutils finds the section titles; the source is cut at them."""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from docutils.core import publish_doctree

from ..documents import Block, ParsedDocument
from ._common import line_offsets, paragraph_blocks, read_text

SUFFIXES = (".rst", ".rest")
_DOCUTILS_SETTINGS = {
    "report_level": 5,  # silence: a malformed directive must not stop the ingest
    "halt_level": 5,
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "warning_stream": False,
}


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    doctree = publish_doctree(text, settings_overrides=_DOCUTILS_SETTINGS)
    lines = text.split("\n")
    offsets = line_offsets(text)
    starts = _section_starts(doctree, lines)
    blocks: list[Block] = []
    for i, (line_no, path_) in enumerate(starts):
        end_line = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
        start, end = offsets[line_no], offsets[min(end_line, len(offsets) - 1)]
        blocks.extend(paragraph_blocks(text, start, end, heading_path=path_))
    title = doctree.get("title") or path.stem
    return ParsedDocument(text=text, blocks=blocks, title=title)


def _section_starts(doctree: nodes.document, lines: list[str]) -> list[tuple[int, tuple[str, ...]]]:
    """(0-based first line, heading path) of the preamble and of every section."""
    starts: list[tuple[int, tuple[str, ...]]] = [(0, ())]
    for section in doctree.findall(nodes.section):
        title = section.next_node(nodes.title)
        if title is None or title.line is None:
            continue
        text_line = title.line - 2  # docutils reports the underline, 1-based
        if text_line > 0 and _is_adornment(lines[text_line - 1]):
            text_line -= 1  # an overline belongs to the title too
        starts.append((max(text_line, 0), _heading_path(section)))
    starts.sort()
    return starts


def _heading_path(section: nodes.section) -> tuple[str, ...]:
    path = []
    node: nodes.Node | None = section
    while node is not None:
        if isinstance(node, nodes.section):
            title = node.next_node(nodes.title)
            assert title is not None  # docutils: a section starts with its title
            path.append(title.astext())
        elif isinstance(node, nodes.document) and node.get("title"):
            path.append(node["title"])
        node = node.parent
    return tuple(reversed(path))


def _is_adornment(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= 3 and len(set(stripped)) == 1 and not stripped.isalnum()

"""DOCX through python-docx: paragraphs and tables in order, Heading styles as path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder

SUFFIXES = (".docx",)


def parse(path: Path) -> ParsedDocument:
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(f"corrupt DOCX: {exc}") from exc
    builder = TextBuilder()
    headings: list[tuple[int, str]] = []
    title = (document.core_properties.title or "").strip()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            builder.add(_table_text(item), tuple(h for _, h in headings), kind="table")
            continue
        level = _heading_level(item.style.name if item.style is not None else "")
        text = item.text
        if level is not None and text.strip():
            headings = [h for h in headings if h[0] < level] + [(level, text.strip())]
            title = title or text.strip()
            builder.add(text, tuple(h for _, h in headings), kind="heading")
        else:
            builder.add(text, tuple(h for _, h in headings))
    return ParsedDocument(text=builder.text, blocks=builder.blocks, title=title or path.stem)


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    if style_name.startswith("Heading "):
        suffix = style_name.removeprefix("Heading ")
        return int(suffix) if suffix.isdigit() else None
    return None


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells = [cell.text.strip() for cell in row.cells]
        rows.append(" | ".join(cells))
    return "\n".join(rows)

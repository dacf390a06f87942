"""DOCX through python-docx: paragraphs and tables in order, Heading styles as path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
from docx.document import Document as DocxDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder

SUFFIXES = (".docx",)


def parse(path: Path) -> ParsedDocument:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise ParseError(f"corrupt DOCX: not a zip archive ({exc})") from exc
    if not names:
        raise ParseError("not a Word document: the zip archive is empty")
    if "[Content_Types].xml" not in names:
        raise ParseError("not a Word document: the zip archive has no [Content_Types].xml")
    try:
        return _read(docx.Document(str(path)), path)
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise ParseError(f"not a Word document: {exc}") from exc
    except SyntaxError as exc:  # lxml's XMLSyntaxError: a part is not XML at all
        raise ParseError(
            f"not a Word document: a part of it is not well-formed XML ({exc})"
        ) from exc
    except AttributeError as exc:  # python-docx met XML other than the Office XML it reads
        raise ParseError(
            "not a Word document: its [Content_Types].xml, relationships or "
            "word/document.xml are not Office Open XML"
        ) from exc


def _read(document: DocxDocument, path: Path) -> ParsedDocument:
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

"""PDF through pypdf: text per page, so every chunk knows its page number."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder

SUFFIXES = (".pdf",)


def parse(path: Path) -> ParsedDocument:
    reader = _open(path)
    builder = TextBuilder()
    try:
        for number, page in enumerate(reader.pages, start=1):
            for paragraph in (page.extract_text() or "").split("\n\n"):
                builder.add(_join_lines(paragraph), page=number)
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"corrupt PDF: {exc}") from exc
    if not builder.text:
        raise ParseError("PDF has no extractable text (scanned? run OCR on it first)")
    title = _metadata_title(reader) or path.stem
    return ParsedDocument(
        text=builder.text, blocks=builder.blocks, title=title, metadata={"pages": len(reader.pages)}
    )


def _open(path: Path) -> PdfReader:
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF: decrypt it first (e.g. `qpdf --decrypt`)")
        return reader
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise ParseError(f"corrupt PDF: {exc}") from exc


def _join_lines(paragraph: str) -> str:
    # pypdf ends every visual line with a newline; a paragraph reads better as one line.
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def _metadata_title(reader: PdfReader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return ""
    return str(title).strip() if title else ""

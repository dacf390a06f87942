"""Presentations through python-pptx (Google Slides arrive from Takeout as PPTX).

One passage per slide — its title, text boxes, tables and speaker notes — under
the heading ``Slide 3: Roadmap``, so a citation names the slide.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pptx
from pptx.exc import PackageNotFoundError
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder

SUFFIXES = (".pptx",)


def parse(path: Path) -> ParsedDocument:
    try:
        deck = pptx.Presentation(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(f"corrupt PPTX: {exc}") from exc
    builder = TextBuilder()
    title = (deck.core_properties.title or "").strip() or None
    for number, slide in enumerate(deck.slides, start=1):
        heading = slide.shapes.title.text_frame.text.strip() if slide.shapes.title else ""
        texts = [_shape_text(shape) for shape in slide.shapes if shape != slide.shapes.title]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                texts.append(f"Notes: {notes}")
        body = "\n".join(t for t in [heading, *texts] if t)
        label = f"Slide {number}: {heading}" if heading else f"Slide {number}"
        builder.add(body, (label,), kind="slide")
        title = title or (heading if number == 1 else None)
    return ParsedDocument(builder.text, builder.blocks, title or path.stem)


def _shape_text(shape: BaseShape) -> str:
    if isinstance(shape, Shape) and shape.has_text_frame:  # only a Shape has a text frame
        text: str = shape.text_frame.text
        return text.strip()
    if isinstance(shape, GraphicFrame) and shape.has_table:  # only a GraphicFrame holds a table
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows]
        return "\n".join(rows)
    return ""

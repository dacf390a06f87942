from __future__ import annotations

from pathlib import Path

from ..documents import ParsedDocument
from ._common import paragraph_blocks, read_text

SUFFIXES = (".txt", ".text")


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    return ParsedDocument(text=text, blocks=paragraph_blocks(text), title=path.stem)

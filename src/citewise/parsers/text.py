from __future__ import annotations

from pathlib import Path

from ..documents import ParsedDocument
from . import transcript
from ._common import paragraph_blocks, read_text

SUFFIXES = (".txt", ".text")


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    # whisper(.cpp) output and speaker-labelled transcripts are .txt files too
    cues, kind = transcript.timed_cues(text)
    if cues:
        return transcript.build(cues, path.stem, kind)
    return ParsedDocument(text=text, blocks=paragraph_blocks(text), title=path.stem)

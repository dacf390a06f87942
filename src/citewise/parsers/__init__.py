"""Parsers turn one file into a :class:`~citewise.documents.ParsedDocument`.

Each module here exposes ``SUFFIXES`` and ``parse(path) -> ParsedDocument`` and
raises :class:`~citewise.errors.ParseError` with the reason a file cannot be read.
Adding a format means adding a module and naming it in ``BUILTIN_PARSERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from ..documents import ParsedDocument
from ..errors import ParseError

BUILTIN_PARSERS = (
    "markdown",
    "text",
    "rst",
    "html",
    "pdf",
    "docx",
    "code",
    "transcript",
    "audio",
    "xlsx",
    "pptx",
)

Parser = Callable[[Path], ParsedDocument]


def _load_registry() -> dict[str, Parser]:
    registry: dict[str, Parser] = {}
    for name in BUILTIN_PARSERS:
        module = import_module(f"{__name__}.{name}")
        for suffix in module.SUFFIXES:
            registry[suffix] = module.parse
    return registry


PARSERS: dict[str, Parser] = _load_registry()


def supported(path: Path) -> bool:
    return path.suffix.lower() in PARSERS


def parse_file(path: Path) -> ParsedDocument:
    parser = PARSERS.get(path.suffix.lower())
    if parser is None:
        raise ParseError(f"unsupported file type {path.suffix or '(none)'}")
    if path.stat().st_size == 0:
        raise ParseError("empty file")
    parsed = parser(path)
    if not parsed.text.strip():
        raise ParseError("no text found in file")
    return parsed

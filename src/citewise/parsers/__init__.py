"""Parsers turn one file into a :class:`~citewise.documents.ParsedDocument`.

Each module here exposes ``SUFFIXES`` and ``parse(path) -> ParsedDocument`` and
raises :class:`~citewise.errors.ParseError` with the reason a file cannot be read.
Adding a format means adding a module and naming it in ``BUILTIN_PARSERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Protocol

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
    "mhtml",
)

Parser = Callable[[Path], ParsedDocument]


class ParserModule(Protocol):
    """A parser module (one named in ``BUILTIN_PARSERS``): the suffixes it reads and
    ``parse``."""

    @property
    def SUFFIXES(self) -> tuple[str, ...]: ...  # lower case, with the dot

    def parse(self, path: Path) -> ParsedDocument: ...


if TYPE_CHECKING:  # mypy holds every built-in to the contract (keep in step with the names)
    from . import (
        audio,
        code,
        docx,
        html,
        markdown,
        mhtml,
        pdf,
        pptx,
        rst,
        text,
        transcript,
        xlsx,
    )

    _BUILTINS: tuple[ParserModule, ...] = (
        markdown,
        text,
        rst,
        html,
        pdf,
        docx,
        code,
        transcript,
        audio,
        xlsx,
        pptx,
        mhtml,
    )


def _load_registry() -> dict[str, Parser]:
    registry: dict[str, Parser] = {}
    for name in BUILTIN_PARSERS:
        module: ParserModule = import_module(f"{__name__}.{name}")
        for suffix in module.SUFFIXES:
            registry[suffix] = module.parse
    return registry


PARSERS: dict[str, Parser] = _load_registry()


def supported(path: PurePath) -> bool:
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

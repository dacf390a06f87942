"""Sources yield :class:`SourceItem`\\ s: a stable id, a content hash, and a way to load.

The hash comes before the load so an unchanged item is skipped without parsing.
Files are the built-in source; connectors for other systems yield the same items.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from .documents import Document, ParsedDocument
from .parsers import parse_file, supported

IGNORE_FILES = (".gitignore", ".citewiseignore")
NO_SUCH_PATH = "no such file or directory"


@dataclass
class SourceItem:
    source: str
    content_hash: str
    load: Callable[[], Document]
    mtime_ns: int | None = None
    size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skipped:
    """Something not ingested: skipped on purpose (unsupported, ignored), ``failed``
    (a broken part of a source: a corrupt day file, an undecodable message, a dead URL:
    what was stored from it is kept), or ``gone`` (the source says it no longer exists,
    e.g. HTTP 404: what was stored from it is deleted)."""

    source: str
    reason: str
    failed: bool = False
    gone: bool = False


def file_items(paths: list[Path]) -> Iterator[SourceItem | Skipped]:
    for path in paths:
        try:
            path = path.expanduser().resolve()
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name the OS refuses
            yield Skipped(_shown(path), f"cannot read: {_reason(exc)}", failed=True)
            continue
        if is_dir:
            unreadable: list[Skipped] = []
            for file in walk_files(path, unreadable):
                yield _file_entry(file, "unsupported type")
            yield from unreadable
        elif exists:
            yield _file_entry(path, f"unsupported file type {path.suffix or '(none)'}")
        else:
            yield Skipped(str(path), NO_SUCH_PATH)


def _file_entry(path: Path, unsupported: str) -> SourceItem | Skipped:
    """An item for a regular file; anything else is named with the reason and skipped,
    so one odd entry never stops a folder (``failed``: what was stored from it is kept)."""
    name = str(path)
    if _shown(path) != name:
        return Skipped(_shown(path), "file name is not valid UTF-8; rename the file", failed=True)
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling symlink, a symlink loop, no permission
        return Skipped(name, f"cannot read: {_reason(exc)}", failed=True)
    if not stat.S_ISREG(mode):
        return Skipped(name, "not a regular file (a pipe, socket or device)")
    if not supported(path):
        if path.suffix.lower() == ".zip":
            return _zip_reason(path, name)
        return Skipped(name, unsupported)
    try:
        return _file_item(path)
    except OSError as exc:
        return Skipped(name, f"cannot read: {_reason(exc)}", failed=True)


def _zip_reason(path: Path, name: str) -> Skipped:
    """A zip no connector took: say whether it is broken or just not a known export."""
    import zipfile

    try:
        zipfile.ZipFile(path).close()  # reads the directory only: never inflates anything
    except (zipfile.BadZipFile, OSError) as exc:
        return Skipped(name, f"corrupt or truncated zip archive: {exc}", failed=True)
    return Skipped(
        name,
        "a zip archive read as plain files: exports (Slack, Notion, Google "
        "Drive) are read by their connector (--source NAME); unzip anything else",
    )


def _shown(path: Path) -> str:
    """The path as text; bytes that are not UTF-8 (kept by Python as surrogates) become \ufffd."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def walk_files(root: Path, unreadable: list[Skipped] | None = None) -> Iterator[Path]:
    """Files under ``root`` in sorted order, skipping hidden and ignored ones. Folders that
    cannot be listed are added to ``unreadable`` (as failures: their documents are kept)."""
    specs: dict[Path, pathspec.GitIgnoreSpec] = {}

    def cannot_list(exc: OSError) -> None:
        if unreadable is not None:
            where = _shown(Path(exc.filename)) if exc.filename else str(root)
            unreadable.append(Skipped(where, f"cannot read folder: {_reason(exc)}", failed=True))

    for dirpath, dirnames, filenames in os.walk(root, onerror=cannot_list):
        directory = Path(dirpath)
        spec = _ignore_spec(directory)
        if spec is not None:
            specs[directory] = spec
        active = [(d, s) for d, s in specs.items() if directory == d or d in directory.parents]
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and not _ignored(directory / d, active, True)
        )
        for name in sorted(filenames):
            file = directory / name
            if not name.startswith(".") and not _ignored(file, active, False):
                yield file


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    lines: list[str] = []
    for name in IGNORE_FILES:
        candidate = directory / name
        if candidate.is_file():
            lines.extend(candidate.read_text(encoding="utf-8", errors="replace").splitlines())
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _ignored(path: Path, active: list[tuple[Path, pathspec.GitIgnoreSpec]], is_dir: bool) -> bool:
    for base, spec in active:
        relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(relative):
            return True
    return False


def _file_item(path: Path) -> SourceItem:
    info = path.stat()
    return SourceItem(
        source=str(path),
        content_hash="",  # filled lazily: unchanged mtime and size skip hashing
        load=lambda: document_from_file(path),
        mtime_ns=info.st_mtime_ns,
        size=info.st_size,
    )


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_from_file(path: Path) -> Document:
    parsed = parse_file(path)
    return document_from_parsed(str(path), parsed, hash_file(path), {"path": str(path)})


def document_from_parsed(
    source: str, parsed: ParsedDocument, content_hash: str, metadata: dict[str, Any]
) -> Document:
    return Document(
        source=source,
        title=parsed.title or Path(source).name,
        text=parsed.text,
        blocks=parsed.blocks,
        content_hash=content_hash,
        metadata={**parsed.metadata, **metadata},
        problems=[(f"{source}: {where}", reason) for where, reason in parsed.problems],
        access=parsed.access,
    )


def text_item(
    source: str, title: str, text: str, metadata: dict[str, Any] | None = None
) -> SourceItem:
    """An item for text that is already in memory (a dataset row, a help topic)."""
    from .parsers._common import paragraph_blocks

    content_hash = hash_text(title + "\x00" + text)
    parsed = ParsedDocument(text=text, blocks=paragraph_blocks(text), title=title)
    return SourceItem(
        source=source,
        content_hash=content_hash,
        load=lambda: document_from_parsed(source, parsed, content_hash, metadata or {}),
    )

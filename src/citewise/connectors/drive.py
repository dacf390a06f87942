"""Google Drive through a Google Takeout export (``takeout-…-001.zip`` parts or the folder).

Takeout converts Google Docs to DOCX, Sheets to XLSX and Slides to PPTX, and keeps
other files as they are; all go through the core parsers. A part given alone brings
its sibling parts (``-001.zip``, ``-002.zip``, …): a file can be in any of them, so
only all of them together say what was deleted. Ids are paths inside "My Drive".
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..documents import Block, Document, ParsedDocument
from ..parsers import parse_file, supported
from ..sources import Skipped, SourceItem, document_from_parsed
from .archive import Archive, zip_names
from .base import BaseConnector

_PART = re.compile(r"^(?P<stem>.+)-(?P<n>\d{3})\.zip$", re.I)
DRIVE_DIR = re.compile(r"^(?:.*/)?Takeout/(?:Drive|Google Drive)/", re.I)
CONVERTED = {
    ".docx": "Google Docs or Word",
    ".xlsx": "Google Sheets or Excel",
    ".pptx": "Google Slides or PowerPoint",
}


class DriveTakeout(BaseConnector):
    name = "drive"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        if path.is_dir():
            return (
                (path / "Takeout" / "Drive").is_dir()
                or (path.name.lower() == "takeout" and (path / "Drive").is_dir())
                or any(_PART.match(p.name) and _is_drive_zip(p) for p in path.glob("*.zip"))
            )
        return path.suffix.lower() == ".zip" and _is_drive_zip(path)

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = Path(self.location).expanduser().resolve()
        self._complete, self._incomplete = [], set()
        complete = True
        for part in self._parts(path):
            try:
                archive = Archive(part)
            except (zipfile.BadZipFile, OSError) as exc:
                complete = False
                yield Skipped(str(part), f"unreadable Takeout part: {exc}", failed=True)
                continue
            try:
                for name in archive.names:
                    full = archive.prefix + name
                    # Given the Takeout folder itself, names start at Drive/.
                    relative = _drive_path(full) or _drive_path("Takeout/" + full)
                    if relative is None:
                        continue
                    item = self._item(archive, name, relative, part)
                    if isinstance(item, Skipped) and item.failed:
                        complete = False
                    yield item
            finally:
                archive.close()
        if complete:
            self._read("drive://")

    def _parts(self, path: Path) -> list[Path]:
        if path.is_dir():
            parts = sorted(p for p in path.glob("*.zip") if _PART.match(p.name))
            return parts or [path]
        match = _PART.match(path.name)
        if match:
            siblings = sorted(path.parent.glob(f"{glob_escape(match['stem'])}-[0-9][0-9][0-9].zip"))
            return siblings or [path]
        return [path]

    def _item(self, archive: Archive, name: str, relative: str, part: Path) -> SourceItem | Skipped:
        filename = PurePosixPath(relative).name
        if not supported(PurePosixPath(filename)):
            return Skipped(
                f"drive://{relative}",
                f"unsupported file type {PurePosixPath(filename).suffix or '(none)'}",
            )
        try:
            data = archive.read(name)
        except (zipfile.BadZipFile, OSError, KeyError) as exc:
            return Skipped(f"{part}/{name}", f"unreadable file in the export: {exc}", failed=True)
        source = f"drive://{relative}"
        content_hash = hashlib.sha256(data).hexdigest()
        folders = tuple(PurePosixPath(relative).parts[:-1])
        metadata = {
            "source_type": "drive",
            "path": relative,
            "folder": "/".join(folders),
            "format": CONVERTED.get(PurePosixPath(filename).suffix.lower(), "file"),
            "updated_at": archive.modified(name).isoformat(),
        }

        def load() -> Document:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / filename
                local.write_bytes(data)
                parsed = parse_file(local)
            title = PurePosixPath(filename).stem  # the name the file has in Drive
            blocks = [
                Block(
                    b.start,
                    b.end,
                    (title, *b.heading_path) if b.heading_path[:1] != (title,) else b.heading_path,
                    b.page,
                    b.kind,
                )
                for b in parsed.blocks
            ]
            return document_from_parsed(
                source,
                ParsedDocument(parsed.text, blocks, title, parsed.metadata),
                content_hash,
                metadata,
            )

        return SourceItem(source=source, content_hash=content_hash, load=load)


def _drive_path(name: str) -> str | None:
    match = DRIVE_DIR.match(name)
    if match is None:
        return None
    relative = name[match.end() :]
    return relative or None


def _is_drive_zip(path: Path) -> bool:
    return any(DRIVE_DIR.match(n) for n in zip_names(path, limit=20000))


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)

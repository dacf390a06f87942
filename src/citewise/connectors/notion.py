"""Notion workspace exports ("Export → Markdown & CSV": a zip, a zip of zips, or the folder).

Pages are ``Title <32-hex id>.md`` files; a page's children sit in the folder
``Title <id>/`` beside it; databases are ``Name <id>.csv`` (and ``Name <id>_all.csv``,
which also holds rows hidden by a view) with their row pages in ``Name <id>/``.

A page's heading path is its ancestors' titles followed by its own headings, so a
citation reads "Engineering Wiki > On-call > Escalation". Links to other pages are
rewritten to their titles. Database rows with a page of their own are that page
(its properties lead its text); rows without one become records of their properties.
Each top-level page tree is a scope: a newer export of it deletes pages that left it. The
export does not say whether it holds the whole workspace, so a tree missing from it is kept
unless the user says so (``whole_workspace=True``, ``--whole-workspace``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from ..documents import Block, Document, ParsedDocument
from ..parsers import parse_file, supported
from ..parsers._common import TextBuilder
from ..parsers.markdown import markdown_blocks
from ..sources import Skipped, SourceItem, document_from_parsed
from .archive import Archive, os_metadata, zip_names
from .base import BaseConnector

_ID = re.compile(r"^(?P<title>.*?)\s*(?P<id>[0-9a-f]{32})$")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
# A relation property's value, in a database's CSV and on its row pages: the linked page's
# title, then its URL-encoded path, "Marketing campaign (../Projects%20<id>/Marketing%20
# campaign%20<id>.md)". Notion leaves parentheses in a title unencoded.
_RELATION_PATH = re.compile(r" ?\(((?:[^()\s]|\([^()\s]*\))+\.(?:md|csv))\)")
# Attachments no parser reads: images have no text without OCR, which citewise lacks.
_IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".tif", ".tiff", ".heic")


@dataclass(frozen=True)
class Node:
    """A page or database: its title and id, from a name like ``Title <id>``."""

    title: str
    id: str


def node(name: str) -> Node | None:
    stem = PurePosixPath(name).name
    for suffix in ("_all.csv", ".csv", ".md"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    match = _ID.match(stem)
    return Node(match["title"] or "Untitled", match["id"]) if match else None


class NotionExport(BaseConnector):
    name = "notion"

    @classmethod
    def detect(cls, location: str) -> bool:
        """A page (``Title <id>.md``) or database (``Name <id>.csv``) at the top of the
        export — or inside the one folder an unzipped export is wrapped in — or Notion's
        ``Export-….zip`` parts."""
        path = Path(location).expanduser()
        if path.is_dir():
            entries = [p for p in path.iterdir() if not os_metadata(p.name)]
            folders = [p for p in entries if p.is_dir()]
            if len(entries) == 1 and folders:  # unzipped: Export-<id>/ holds the export
                entries = [p for p in folders[0].iterdir() if not os_metadata(p.name)]
            names = [p.name for p in entries]
        elif path.suffix.lower() == ".zip" and path.is_file():
            names = [PurePosixPath(n).name for n in zip_names(path) if not os_metadata(n)]
        else:
            return False
        return any(n.endswith((".md", ".csv")) and node(n) for n in names) or any(
            n.lower().startswith("export-") and n.lower().endswith(".zip") for n in names
        )

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = Path(self.location).expanduser().resolve()
        self._complete, self._incomplete = [], set()
        try:
            export = Archive(path)
        except (zipfile.BadZipFile, OSError) as exc:
            yield Skipped(str(path), f"unreadable Notion export: {exc}", failed=True)
            return
        try:
            titles = self._titles(export)
            self._row_page_titles = self._row_pages(export)
            self._view_rows = self._linked_view_rows(export)
            for name in export.names:
                yield from self._items_for(export, path, name, titles)
        finally:
            export.close()
        if self.options.get("whole_workspace") and not self._incomplete:
            # The user says this export is the whole workspace, and all of it was read: a
            # tree absent from it was deleted in Notion, so its pages go too.
            self._read("notion://")

    def _titles(self, export: Archive) -> dict[str, Node]:
        """Every page and database by id, with the id of its top-level tree."""
        nodes: dict[str, Node] = {}
        for name in export.names:
            for part in PurePosixPath(name).parts:
                found = node(part)
                if found:
                    nodes[found.id] = found
        for top in {ids[0] for name in export.names if (ids := self._ids(name))}:
            self._read(f"notion://{top}")
        return nodes

    def _ids(self, name: str) -> list[str]:
        return [n.id for part in PurePosixPath(name).parts if (n := node(part))]

    def _items_for(
        self, export: Archive, path: Path, name: str, titles: dict[str, Node]
    ) -> Iterator[SourceItem | Skipped]:
        ids = self._ids(name)
        here = node(PurePosixPath(name).name)
        ancestors = (
            tuple(titles[i].title for i in ids[:-1])
            if here
            else tuple(titles[i].title for i in ids)
        )
        top = ids[0] if ids else None
        if name.endswith(".md") and here:
            yield self._page(export, path, name, here, ancestors, titles, top or here.id)
        elif name.endswith(".csv") and here:
            if _has_all_twin(export, name):
                return  # the _all.csv holds the same rows and those hidden by views
            yield from self._database(export, path, name, here, ancestors, top or here.id)
        elif top and supported(PurePosixPath(name)) and not name.endswith((".md", ".csv")):
            yield self._attachment(export, path, name, ancestors, top)
        elif name.lower().endswith(_IMAGES):
            yield Skipped(f"{path}/{name}", "an image: its text is not read (no OCR)")
        elif not supported(PurePosixPath(name)):
            yield Skipped(
                f"{path}/{name}", f"unsupported file type {PurePosixPath(name).suffix or '(none)'}"
            )

    def _page(
        self,
        export: Archive,
        path: Path,
        name: str,
        page: Node,
        ancestors: tuple[str, ...],
        titles: dict[str, Node],
        top: str,
    ) -> SourceItem | Skipped:
        try:
            raw = export.read(name).decode("utf-8")
        except (UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
            self._broken(f"notion://{top}")
            return Skipped(f"{path}/{name}", f"unreadable page: {exc}", failed=True)
        text = _resolve_links(raw, titles)
        source = f"notion://{top}/{page.id}"
        content_hash = hashlib.sha256(("/".join(ancestors) + "\x00" + text).encode()).hexdigest()
        metadata = {
            "source_type": "notion",
            "page_id": page.id,
            "path": list(ancestors),
            "url": f"https://www.notion.so/{page.id}",
            "properties": _properties(text),
        }

        def load() -> Document:
            blocks, heading = markdown_blocks(text)
            prefixed = [
                Block(
                    b.start, b.end, (*ancestors, *(b.heading_path or (page.title,))), b.page, b.kind
                )
                for b in blocks
            ]
            parsed = ParsedDocument(text, prefixed, heading or page.title)
            return document_from_parsed(source, parsed, content_hash, metadata)

        return SourceItem(source=source, content_hash=content_hash, load=load)

    def _database(
        self,
        export: Archive,
        path: Path,
        name: str,
        database: Node,
        ancestors: tuple[str, ...],
        top: str,
    ) -> Iterator[SourceItem | Skipped]:
        try:
            rows = _rows(export, name)
        except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile, OSError) as exc:
            self._broken(f"notion://{top}")
            yield Skipped(f"{path}/{name}", f"unreadable database: {exc}", failed=True)
            return
        folder = name[: -len("_all.csv")] if name.endswith("_all.csv") else name[: -len(".csv")]
        pages = {
            n.title
            for other in export.names
            if other.startswith(folder + "/")
            and other.count("/") == folder.count("/") + 1
            and (n := node(other))
        }
        # A linked view of a database elsewhere exports its rows again, without row pages
        # beside them: rows that are pages of a database of that name are those pages.
        pages |= self._row_page_titles.get(database.title, set())
        # Rows without pages it exports again too: the database's own CSV has them.
        pages |= self._view_rows.get(name, set())
        for line, values in rows:
            title_key = next(iter(values))
            title = values[title_key] or "Untitled"
            if title in pages:
                continue  # the row's own page (or its database's own CSV) carries it
            source = f"notion://{top}/{database.id}/row/{hashlib.sha256(title.encode()).hexdigest()[:16]}"
            builder = TextBuilder()
            builder.add(
                f"{title}\n\n"
                + "\n".join(f"{k}: {v}" for k, v in values.items() if v and k != title_key),
                (*ancestors, database.title, title),
            )
            content_hash = hashlib.sha256(builder.text.encode()).hexdigest()
            metadata = {
                "source_type": "notion",
                "database": database.title,
                "database_id": database.id,
                "row": line,
                "properties": values,
                "url": f"https://www.notion.so/{database.id}",
            }
            parsed = ParsedDocument(builder.text, builder.blocks, f"{database.title}: {title}")
            yield SourceItem(
                source=source,
                content_hash=content_hash,
                load=partial(document_from_parsed, source, parsed, content_hash, metadata),
            )

    @staticmethod
    def _row_pages(export: Archive) -> dict[str, set[str]]:
        """Page titles by the title of the page or database folder they sit in."""
        titles: dict[str, set[str]] = {}
        for name in export.names:
            parts = PurePosixPath(name).parts
            page = node(parts[-1]) if name.endswith(".md") else None
            parent = node(parts[-2]) if page and len(parts) > 1 else None
            if page and parent:
                titles.setdefault(parent.title, set()).add(page.title)
        return titles

    @staticmethod
    def _linked_view_rows(export: Archive) -> dict[str, set[str]]:
        """By CSV, the titles of rows read from another CSV: a linked view of a database
        exports that database again under its own id. Of the CSVs of databases of one name,
        the database's own (with its folder of row pages beside it), else the one with the
        most columns, is read whole; the others' rows that it holds are left out."""
        by_title: dict[str, list[str]] = {}
        for name in export.names:
            here = node(PurePosixPath(name).name)
            if here and name.endswith(".csv") and not _has_all_twin(export, name):
                by_title.setdefault(here.title, []).append(name)
        held: dict[str, set[str]] = {}
        for names in by_title.values():
            if len(names) < 2:
                continue
            tables: dict[str, list[tuple[int, dict[str, str]]]] = {}
            for name in names:
                try:
                    tables[name] = _rows(export, name)
                except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile, OSError):
                    continue  # reported when the database itself is read
            if not tables:
                continue
            rank = {
                name: (
                    any(
                        n.startswith(name.removesuffix(".csv").removesuffix("_all") + "/")
                        for n in export.names
                    ),
                    max((len(values) for _, values in rows), default=0),
                )
                for name, rows in tables.items()
            }
            own = max(tables, key=rank.__getitem__)
            titles = {next(iter(values.values())) or "Untitled" for _, values in tables[own]}
            held |= {name: titles for name in tables if name != own}
        return held

    def _attachment(
        self, export: Archive, path: Path, name: str, ancestors: tuple[str, ...], top: str
    ) -> SourceItem:
        data = export.read(name)
        source = f"notion://{top}/files/{name}"
        content_hash = hashlib.sha256(data).hexdigest()
        filename = PurePosixPath(name).name

        def load() -> Document:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / filename
                local.write_bytes(data)
                parsed = parse_file(local)
            blocks = [
                Block(b.start, b.end, (*ancestors, filename, *b.heading_path), b.page, b.kind)
                for b in parsed.blocks
            ]
            document = ParsedDocument(
                parsed.text, blocks, parsed.title or filename, parsed.metadata
            )
            return document_from_parsed(
                source,
                document,
                content_hash,
                {"source_type": "notion", "attached_to": list(ancestors)},
            )

        return SourceItem(source=source, content_hash=content_hash, load=load)


def _has_all_twin(export: Archive, name: str) -> bool:
    """Whether ``Name <id>.csv`` has its ``Name <id>_all.csv`` beside it."""
    return not name.endswith("_all.csv") and export.has(name[: -len(".csv")] + "_all.csv")


def _rows(export: Archive, name: str) -> list[tuple[int, dict[str, str]]]:
    """A database CSV's rows with their line numbers: properties by name (relations as
    the linked pages' titles), the row's title first."""
    reader = csv.DictReader(io.StringIO(export.read(name).decode("utf-8-sig"), newline=""))
    rows = []
    for line, row in enumerate(reader, start=2):
        values = {k.strip(): _relation_titles((v or "").strip()) for k, v in row.items() if k}
        if values:
            rows.append((line, values))
    return rows


def _resolve_links(text: str, titles: dict[str, Node]) -> str:
    """``[label](Other%20Page%20<id>.md)`` → ``label`` (or ``label (Other Page)``)."""

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), unquote(match.group(2))
        if target.startswith(("http://", "https://", "mailto:")):
            return match.group(0)
        found = node(PurePosixPath(target.split("#")[0]).name)
        if found is None or found.id not in titles:
            return label or match.group(0)
        title = titles[found.id].title
        return title if not label or label == title else f"{label} ({title})"

    return _relation_titles(_LINK.sub(replace, text))


def _relation_titles(text: str) -> str:
    """``Marketing campaign (../Projects%20<id>/Marketing%20campaign%20<id>.md)`` →
    ``Marketing campaign``: a relation's value is the linked page's title, not its path."""

    def replace(match: re.Match[str]) -> str:
        linked = node(PurePosixPath(unquote(match.group(1))).name)
        return "" if linked else match.group(0)

    return _RELATION_PATH.sub(replace, text)


def _properties(text: str) -> dict[str, str]:
    """A row page's ``Key: Value`` lines between its title and its body."""
    properties = {}
    for line in text.splitlines()[1:12]:
        match = re.match(r"^([A-Z][\w ]{0,30}):\s+(.+)$", line.strip())
        if match:
            properties[match.group(1)] = match.group(2)
        elif line.strip() and properties:
            break
    return properties

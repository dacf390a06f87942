"""Files and folders through the core parsers (the default connector)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..sources import Skipped, SourceItem, file_items
from .base import BaseConnector


class Files(BaseConnector):
    name = "files"

    @classmethod
    def detect(cls, location: str) -> bool:
        return True

    def items(self) -> Iterator[SourceItem | Skipped]:
        root = Path(self.location).expanduser().resolve()
        items = list(file_items([root]))  # small; a known total gives the progress bar an ETA
        self._read(str(root))
        return self._with_exports(items)

    def _with_exports(self, items: list[SourceItem | Skipped]) -> Iterator[SourceItem | Skipped]:
        """Exports inside the folder (a Gmail .mbox, a Slack or Notion zip) go through their
        own connector, as they would when named alone — but the mail files of a folder (an
        .mbox and the .eml files beside it) are read together, so their threads join."""
        from . import connector_for, detect_source

        mail: dict[Path, list[str]] = {}
        exports: list[tuple[str, str, list[str]]] = []
        for item in items:
            source = detect_source(item.source) if _unsupported(item) else "files"
            if source == "files":
                yield item
            elif source == "gmail":
                mail.setdefault(Path(item.source).parent, []).append(item.source)
            else:
                exports.append((item.source, source, []))
        exports += [(box[0], "gmail", box[1:]) for files in mail.values() for box in _boxes(files)]
        for location, source, also in exports:
            more = {"also": also} if also else {}
            connector = connector_for(location, source, **self.options, **more)  # --owner…
            yield from connector.items()
            for scope in connector.complete_scopes():  # what sync may prune, as if named alone
                self._read(scope)


def _boxes(files: list[str]) -> list[list[str]]:
    """A folder's mail files as mailboxes: its .mbox with its .eml files, or (two .mbox, of
    two owners maybe) each .mbox alone and the .eml files together."""
    mboxes = [f for f in files if f.lower().endswith(".mbox")]
    emls = [f for f in files if f not in mboxes]
    if len(mboxes) == 1:
        return [mboxes + emls]
    return [[m] for m in mboxes] + ([emls] if emls else [])


def _unsupported(item: SourceItem | Skipped) -> bool:
    return isinstance(item, Skipped) and not item.failed and item.reason == "unsupported type"

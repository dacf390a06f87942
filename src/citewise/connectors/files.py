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
        own connector, as they would when named alone."""
        from . import connector_for, detect_source

        for item in items:
            source = detect_source(item.source) if _unsupported(item) else "files"
            if source == "files":
                yield item
                continue
            connector = connector_for(item.source, source)
            yield from connector.items()
            for scope in connector.complete_scopes():  # what sync may prune, as if named alone
                self._read(scope)


def _unsupported(item: SourceItem | Skipped) -> bool:
    return isinstance(item, Skipped) and not item.failed and item.reason == "unsupported type"

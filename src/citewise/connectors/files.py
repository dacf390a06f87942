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
        return iter(items)

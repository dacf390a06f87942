"""What a connector is: something that streams a source's documents as :class:`SourceItem`\\ s.

A connector is constructed with the location the user gave (a path or a URL) and
options, yields items lazily — an export is never loaded whole — and afterwards
says which parts of its source it read completely, so documents that vanished
from those parts (and only those) are deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..sources import Skipped, SourceItem


@runtime_checkable
class Connector(Protocol):
    name: ClassVar[str]

    @classmethod
    def detect(cls, location: str) -> bool:
        """Whether ``location`` looks like this connector's kind of source."""
        ...

    def items(self) -> Iterator[SourceItem | Skipped]:
        """The source's documents, as items with stable ids and content hashes."""
        ...

    def complete_scopes(self) -> list[str]:
        """Source prefixes read completely by the last :meth:`items` run."""
        ...


class PartialScope(str):
    """A scope read completely for part of what it holds only — a Slack export of some dates:
    of the documents stored under it and missing from the run, only those ``covers``
    accepts are deleted; the rest are kept, and the report says so, "kept N documents"
    followed by ``kept`` ("outside this export's dates 2026-01-01…2026-02-28")."""

    covers: Callable[[str], bool]
    kept: str

    def __new__(cls, scope: str, covers: Callable[[str], bool], kept: str) -> PartialScope:
        self = super().__new__(cls, scope)
        self.covers, self.kept = covers, kept
        return self


class ConnectorFactory(Protocol):
    """What a connector plug-in registers (its :class:`Connector` class, usually)."""

    def detect(self, location: str) -> bool:
        """Whether ``location`` looks like this connector's kind of source."""
        ...

    def __call__(self, location: str, **options: Any) -> Connector:
        """The connector for ``location``, with the source's options."""
        ...


class BaseConnector:
    """Keeps the location and options, and tracks which scopes were read completely."""

    name: ClassVar[str] = ""

    def __init__(self, location: str, **options: Any) -> None:
        self.location = location
        self.options = options
        self._complete: list[str] = []
        self._incomplete: set[str] = set()

    @classmethod
    def detect(cls, location: str) -> bool:  # pragma: no cover - overridden
        return False

    def items(self) -> Iterator[SourceItem | Skipped]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _start(self) -> Path:
        """The location resolved, with what an earlier run read forgotten: the start of
        a file export's ``items``."""
        self._complete, self._incomplete = [], set()
        return Path(self.location).expanduser().resolve()

    def complete_scopes(self) -> list[str]:
        return [s for s in self._complete if s not in self._incomplete]

    def _read(self, scope: str) -> None:
        self._complete.append(scope)

    def _broken(self, scope: str) -> None:
        """Part of ``scope`` could not be read: keep its stored documents."""
        self._incomplete.add(scope)

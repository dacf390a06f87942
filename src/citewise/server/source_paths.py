"""What API callers see of a document's source: never the server's file system.

A file's source is stored as its absolute path (the identity sync and re-ingest need).
Callers see it relative to where it was ingested from instead: an upload relative to the
workspace (``uploads/docs/report.pdf``), any other file relative to the folder its
collection's files share (``guide.md``, ``src/thermostat.py``) — a collection's ingest root,
as far as the store knows it. A connector's source (a URL, ``slack://…``) is shown as it is.
A file outside every known root is shown by its name alone.

The shared folder is read from the store when a collection is first shown and again
(at most every ``REFRESH_S`` seconds) when a source lies outside it: a file ingested
since, possibly by another replica. It reads the database: call it from a worker thread.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

REFRESH_S = 5.0
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def is_server_path(text: str) -> bool:
    """An absolute file-system path (POSIX or Windows), as file sources are stored."""
    return text.startswith("/") or bool(_WINDOWS_PATH.match(text))


class SourcePaths:
    def __init__(self, store: Any, workspace_root: str) -> None:
        self.store = store
        self.root = workspace_root  # ends with the separator
        # collection name -> (the folder its files share, or None; when it was read)
        self._folders: dict[str, tuple[str | None, float]] = {}

    def shown(self, source: str, collection: str) -> str:
        if self.root and source.startswith(self.root):
            return source[len(self.root) :]
        if not is_server_path(source):
            return source  # a URL or a connector's own id
        folder = self._folder(collection, source)
        if folder and source.startswith(folder) and len(source) > len(folder):
            return source[len(folder) :].replace("\\", "/")
        return _name(source)

    def metadata(self, metadata: dict[str, Any], source: str, collection: str) -> dict[str, Any]:
        """Metadata for callers: no principals (they are for permission checks), and every
        server path (``path``, which files carry) shown as :meth:`shown` shows sources."""
        return {
            key: self.shown(value, collection)
            if _is_path_value(value, source, self.root)
            else value
            for key, value in metadata.items()
            if not key.startswith("principal")
        }

    def _folder(self, collection: str, source: str) -> str | None:
        folder, read_at = self._folders.get(collection, (None, 0.0))
        inside = folder is not None and source.startswith(folder)
        if not inside and time.monotonic() - read_at > REFRESH_S:
            folder = self._read_folder(collection)
            self._folders[collection] = (folder, time.monotonic())
        return folder

    def _read_folder(self, collection: str) -> str | None:
        record = self.store.collection(collection)
        if record is None:
            return None
        files = [
            s
            for s in self.store.sources(record.id)
            if is_server_path(s) and not (self.root and s.startswith(self.root))
        ]
        if not files:
            return None
        try:
            common = os.path.commonpath([_parent(s) for s in files])
        except ValueError:  # POSIX and Windows paths mixed, or different drives
            return None
        if common in ("", "/", "\\") or re.fullmatch(r"[A-Za-z]:[\\/]?", common):
            return None  # files from all over the disk share no folder worth hiding
        separator = "\\" if "\\" in common and "/" not in common else "/"
        return common.rstrip("/\\") + separator


def _parent(source: str) -> str:
    return str((PureWindowsPath if _WINDOWS_PATH.match(source) else PurePosixPath)(source).parent)


def _name(source: str) -> str:
    return (PureWindowsPath if _WINDOWS_PATH.match(source) else PurePosixPath)(source).name


def _is_path_value(value: Any, source: str, root: str) -> bool:
    """A server path in a document's metadata: any absolute path of a file's document (its
    ``path``); of a connector's, only one inside the workspace (its own metadata, say a
    Drive folder, is the connector's and shown as it is)."""
    if not isinstance(value, str) or not is_server_path(value):
        return False
    return is_server_path(source) or bool(root and value.startswith(root))

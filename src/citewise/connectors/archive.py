"""An export's files, from a zip (also a zip of zips, as Notion and Takeout split big
exports) or an unzipped folder, by relative POSIX path. Reads one file at a time.

Sizes are bounded by what a zip inflates to, not what it weighs: one file may inflate to
``MAX_MEMBER_BYTES`` (it is read into memory whole), an archive to ``MAX_TOTAL_BYTES``.
A zip bomb is refused from its directory, before anything is inflated (zipfile never
inflates a member past the size its directory declares)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 8 * 1024 * 1024 * 1024


class ArchiveTooLarge(OSError):
    """A member or the whole archive inflates past the limits (the connectors report it
    like any unreadable file)."""


class Archive:
    def __init__(self, location: Path, marker_names: tuple[str, ...] = ()) -> None:
        self.location = location
        self._zips: list[zipfile.ZipFile] = []
        self._where: dict[str, tuple[zipfile.ZipFile | None, str]] = {}
        self._inflated = 0  # bytes the zips declare they inflate to
        if location.is_file():
            self._add_zip(zipfile.ZipFile(location))
        else:
            for path in sorted(location.rglob("*")):
                name = path.relative_to(location).as_posix()
                if path.is_file() and not os_metadata(name):
                    self._where[name] = (None, str(path))
        # A zip may wrap everything in one top folder: names are relative to it.
        names = list(self._where)
        prefixes = {n.split("/", 1)[0] + "/" for n in names if "/" in n}
        self.prefix = ""
        top_level = any("/" not in n for n in names)
        if (marker_names and not any(n in marker_names for n in names) and len(prefixes) == 1) or (
            not marker_names and not top_level and len(prefixes) == 1
        ):
            self.prefix = prefixes.pop()
        self.names = sorted(n[len(self.prefix) :] for n in names if n.startswith(self.prefix))

    def _add_zip(self, archive: zipfile.ZipFile) -> None:
        self._zips.append(archive)
        self._inflated += sum(info.file_size for info in archive.infolist())
        if self._inflated > MAX_TOTAL_BYTES:
            raise ArchiveTooLarge(
                f"the archive inflates to {_mb(self._inflated)}, over the "
                f"{_mb(MAX_TOTAL_BYTES)} limit (a zip bomb?)"
            )
        for info in archive.infolist():
            if info.is_dir() or os_metadata(info.filename):
                continue
            if info.filename.lower().endswith(".zip"):
                _check_member(info)
                nested = zipfile.ZipFile(io.BytesIO(archive.read(info)))
                self._add_zip(nested)
            else:
                self._where[info.filename] = (archive, info.filename)

    def read(self, name: str) -> bytes:
        archive, inner = self._where[self.prefix + name]
        if archive is None:
            if Path(inner).stat().st_size > MAX_MEMBER_BYTES:
                raise ArchiveTooLarge(f"{name} is over the {_mb(MAX_MEMBER_BYTES)} limit")
            return Path(inner).read_bytes()
        _check_member(archive.getinfo(inner))
        return archive.read(inner)

    def modified(self, name: str) -> datetime:
        """When the file was last changed, as the export recorded it."""
        archive, inner = self._where[self.prefix + name]
        if archive is None:
            return datetime.fromtimestamp(Path(inner).stat().st_mtime, tz=timezone.utc)
        return datetime(*archive.getinfo(inner).date_time, tzinfo=timezone.utc)

    def has(self, name: str) -> bool:
        return self.prefix + name in self._where

    def close(self) -> None:
        for archive in self._zips:
            archive.close()


def _check_member(info: zipfile.ZipInfo) -> None:
    if info.file_size > MAX_MEMBER_BYTES:
        raise ArchiveTooLarge(
            f"{info.filename} inflates to {_mb(info.file_size)}, over the "
            f"{_mb(MAX_MEMBER_BYTES)} limit for one file in an archive"
        )


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


def zip_names(path: Path, limit: int = 5000) -> list[str]:
    """Member names of a zip (for detection), or [] when it is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()[:limit]
    except (zipfile.BadZipFile, OSError):
        return []


def os_metadata(name: str) -> bool:
    """Files an operating system adds to an archive, not part of the export: macOS's
    ``__MACOSX/`` folder of AppleDouble ``._name`` files and ``.DS_Store``, Windows'
    ``Thumbs.db`` and ``desktop.ini``."""
    parts = name.split("/")
    base = parts[-1]
    return (
        "__MACOSX" in parts[:-1]
        or base.startswith("._")
        or base in (".DS_Store", "Thumbs.db", "desktop.ini")
    )

"""Facebook Messenger from Facebook's *Download your information* (format JSON): a
conversation's folder ``messages/inbox/alicechen_1234567890/`` holds ``message_1.json``
(and ``message_2.json``… for a long one), each {participants [{name}], messages
[{sender_name, timestamp_ms, content, photos, videos, files, share {link}, reactions,
is_unsent}], title, thread_path}. Give a ``message_N.json`` (its siblings come along), a
conversation's folder, the export's folder or its zip.

Facebook writes every string as mojibake: each UTF-8 byte as the code point of the same
value (``Zoé`` reads ``ZoÃ©``); strings are decoded back where they round-trip.

Documents are conversation windows (chat.py), ids ``messenger://THREAD_PATH/TIME_MS``
(the window's first message). Every conversation is private: open only to its participants,
by name (``messenger:Alice_Chen``: the export has no ids for people).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from ..sources import Skipped, SourceItem
from .archive import zip_names
from .base import BaseConnector
from .chat import (
    ChatConversation,
    ChatMessage,
    chat_items,
    clean,
    name_alias,
    open_archive,
    read_head,
    unique_ids,
)

_FILE = re.compile(r"^message_(\d+)\.json$")
_FOLDERS = ("inbox", "archived_threads", "filtered_threads", "message_requests", "e2ee_cutover")
_HEAD = re.compile(r'^\s*\{\s*"participants"\s*:')
DROPPED_TYPES = {"Call", "Subscribe", "Unsubscribe"}  # calls, joins and leaves: not said


def unmojibake(value: Any) -> Any:
    """Strings of a Facebook export as they were written (recursively)."""
    if isinstance(value, str):
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    if isinstance(value, list):
        return [unmojibake(v) for v in value]
    if isinstance(value, dict):
        return {k: unmojibake(v) for k, v in value.items()}
    return value


def _number(name: str) -> int:
    match = _FILE.match(name)
    return int(match[1]) if match else 0


class MessengerExport(BaseConnector):
    name = "messenger"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        try:
            if path.is_file() and _FILE.match(path.name):
                # A conversation is read from its first part: the others stand with it.
                first = min(
                    (p for p in path.parent.glob("message_*.json") if _FILE.match(p.name)),
                    key=lambda p: _number(p.name),
                )
                return first == path and bool(_HEAD.match(read_head(path, 4096)))
            if path.is_file() and path.suffix.lower() == ".zip":
                return any(_thread_folder(n) is not None for n in zip_names(path))
            if path.is_dir():
                if (path / "message_1.json").is_file():
                    return bool(_HEAD.match(read_head(path / "message_1.json", 4096)))
                return any(
                    (path / base / "inbox").is_dir()
                    for base in (
                        ".",
                        "messages",
                        "your_activity_across_facebook/messages",
                        "your_facebook_activity/messages",
                    )
                    if base != "." or path.name == "messages"
                ) or (
                    path.name in _FOLDERS
                    and any((p / "message_1.json").is_file() for p in path.iterdir())
                )
        except (OSError, ValueError, zipfile.BadZipFile):
            return False
        return False

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = self._start()
        if path.is_file() and path.suffix.lower() == ".json":
            # One conversation: this file and its sibling parts, nothing else in the folder.
            parts = [p for p in path.parent.iterdir() if _FILE.match(p.name) and p.is_file()]
            names = [p.name for p in sorted(parts, key=lambda p: _number(p.name))]
            parent = path.parent
            yield from self._thread(
                lambda name: (parent / name).read_bytes(), parent, _short(parent.as_posix()), names
            )
            return
        archive = open_archive(path, "Messenger")
        if isinstance(archive, Skipped):
            yield archive
            return
        try:
            threads: dict[str, list[str]] = {}
            for name in archive.names:
                top = "/" not in name and _FILE.match(name)
                if top or _thread_folder(archive.prefix + name) is not None:
                    threads.setdefault(str(PurePosixPath(name).parent), []).append(name)
            if not threads:
                yield Skipped(str(path), "no message_N.json: not a Messenger export")
            for folder, names in sorted(threads.items()):
                ordered = sorted(names, key=lambda n: _number(PurePosixPath(n).name))
                full = PurePosixPath(path.as_posix(), archive.prefix, folder)
                yield from self._thread(archive.read, path, _short(str(full)), ordered)
        finally:
            archive.close()

    def _thread(
        self, read: Callable[[str], bytes], path: Path, fallback: str, names: list[str]
    ) -> Iterator[SourceItem | Skipped]:
        header: dict[str, Any] | None = None
        raw_messages: list[tuple[str, int, Any]] = []
        broken = False
        for name in names:
            where = f"{path}/{name}"
            try:
                loaded = unmojibake(json.loads(read(name).decode("utf-8-sig")))
                if not isinstance(loaded, dict) or not isinstance(loaded.get("messages"), list):
                    raise ValueError("expected an object with a messages array")
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                broken = True
                yield Skipped(where, f"malformed Messenger export: {exc}", failed=True)
                continue
            header = header or loaded
            raw_messages.extend((where, i, m) for i, m in enumerate(loaded["messages"], 1))
        if header is None:
            return
        thread_path = clean(str(header.get("thread_path") or "")) or fallback
        scope = "messenger://" + thread_path
        self._read(scope)
        if broken:
            self._broken(scope)
        participants = [
            clean(str(p.get("name")))
            for p in header.get("participants") or []
            if isinstance(p, dict) and p.get("name")
        ]
        kept: list[tuple[datetime, str, str]] = []
        for where, index, raw in raw_messages:
            message = _message(raw)
            if isinstance(message, str):
                self._broken(scope)
                yield Skipped(f"{where}#message {index}", message, failed=True)
            elif message is not None:
                kept.append(message)
        kept.sort(key=lambda m: m[0])
        ids = unique_ids(str(int(when.timestamp() * 1000)) for when, _, _ in kept)
        messages = [
            ChatMessage(i, who, when, text) for i, (when, who, text) in zip(ids, kept, strict=True)
        ]
        if not messages:
            return
        people = list(dict.fromkeys([*participants, *(m.author for m in messages)]))
        title = clean(str(header.get("title") or "")) or ", ".join(people)
        regular = header.get("thread_type") == "Regular" or (
            header.get("thread_type") is None and len(people) <= 2
        )
        aliases = [name_alias("messenger", p) for p in people]
        conversation = ChatConversation(
            "messenger",
            scope,
            thread_path,
            f"DM {title}" if regular else title,
            "dm" if regular else "group-dm",
            tuple(dict.fromkeys(aliases)),
            principals=people,
            principal_ids=aliases,
            extra={"thread_path": thread_path},
        )
        yield from chat_items(conversation, messages)


def _short(folder: str) -> str:
    """``inbox/alicechen_123`` from a folder path ending so."""
    parts = PurePosixPath(folder).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else (parts[-1] if parts else "chat")


def _thread_folder(name: str) -> str | None:
    """The conversation folder of an export member ``…/messages/inbox/X/message_N.json``."""
    parts = PurePosixPath(name).parts
    if len(parts) >= 3 and _FILE.match(parts[-1]) and parts[-3] in _FOLDERS:
        return "/".join(parts[:-1])  # the messages folder itself was given
    if len(parts) == 2 and _FILE.match(parts[-1]):
        return parts[0]  # a folder of conversation folders
    return None


def _message(raw: Any) -> tuple[datetime, str, str] | str | None:
    """(time, sender, text) of a message worth keeping, None for one that is not (a call,
    an unsent message, nothing said), or why it is malformed."""
    if not isinstance(raw, dict):
        return "malformed message: not an object"
    stamp = raw.get("timestamp_ms")
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return f"malformed message: bad timestamp_ms {stamp!r}"
    if raw.get("is_unsent") or raw.get("type") in DROPPED_TYPES:
        return None
    text = clean(str(raw.get("content") or ""))
    for key, label in (("photos", "photo"), ("videos", "video"), ("audio_files", "audio")):
        for _ in raw.get(key) or []:
            text += f" [{label}]"
    for attached in raw.get("files") or []:
        if isinstance(attached, dict):
            text += f" [file: {PurePosixPath(str(attached.get('uri') or 'file')).name}]"
    if raw.get("gifs"):
        text += " [GIF]"
    if raw.get("sticker"):
        text += " [sticker]"
    share = raw.get("share")
    if isinstance(share, dict) and share.get("link") and str(share["link"]) not in text:
        text += f" ({share['link']})"
    text = text.strip()
    if not text:
        return None
    sender = clean(str(raw.get("sender_name") or "")) or "unknown"
    return datetime.fromtimestamp(stamp / 1000, tz=timezone.utc), sender, text

"""Discord channels exported by DiscordChatExporter as JSON (``--format Json``): one file
per channel (a big one split into ``… [part 2].json`` partitions), or a folder of them.

Each file holds ``guild``, ``channel`` {id, type, category, name, topic}, ``dateRange`` and
``messages`` [{id, type, timestamp, timestampEdited, content, author {id, name, nickname,
isBot}, attachments, embeds, stickers, mentions, reference {messageId}}]. The exporter
writes ``content`` as a person reads it (mentions as ``@name``, channels as ``#name``).

Documents are conversation windows (chat.py); a reply to an earlier window joins it. Ids are
``discord://GUILD/CHANNEL/MESSAGE`` (the window's first message), and each document links
to that message (``https://discord.com/channels/GUILD/CHANNEL/MESSAGE``). Server channels
are open to the collection (the export carries no permissions); a DM, a group DM or a
private thread only to the people seen in it (authors and mentioned users, ``discord:ID``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..sources import Skipped, SourceItem, walk_files
from .base import BaseConnector
from .chat import (
    ChatConversation,
    ChatMessage,
    chat_items,
    clean,
    parse_iso,
    read_head,
    read_json_file,
)

_HEAD = re.compile(r'^\s*\{\s*"guild"\s*:\s*\{')
_IDS = re.compile(
    r'"guild"\s*:\s*\{\s*"id"\s*:\s*"(\d+)".*?"channel"\s*:\s*\{\s*"id"\s*:\s*"(\d+)"', re.S
)
_PART = re.compile(r"^(?P<stem>.*?) \[part (?P<n>\d+)\]$")
# Message types that carry what people said; joins, pins, calls and renames are noise.
KEPT_TYPES = {"Default", "Reply"}
PRIVATE_TYPES = {
    "DirectTextChat": "dm",
    "DirectGroupTextChat": "group-dm",
    "GuildPrivateThread": "private",
}


def is_export(path: Path) -> bool:
    """Whether a file is DiscordChatExporter JSON (by its first bytes)."""
    return path.suffix.lower() == ".json" and bool(_HEAD.match(read_head(path, 4096)))


def _part(path: Path) -> tuple[str, int]:
    match = _PART.match(path.stem)
    return (match["stem"], int(match["n"])) if match else (path.stem, 0)


class DiscordExport(BaseConnector):
    name = "discord"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        try:
            if path.is_file():
                # A partition is read with its siblings: only the first one stands for them.
                stem, n = _part(path)
                return is_export(path) and not any(
                    _part(p) < (stem, n) and _part(p)[0] == stem and is_export(p)
                    for p in path.parent.glob("*.json")
                )
            if path.is_dir():
                # A folder of exports only (and the exporter's media folders, *_Files).
                entries = [p for p in path.iterdir() if not p.name.startswith(".")]
                files = [p for p in entries if p.is_file()]
                folders = [p for p in entries if p.is_dir()]
                return (
                    bool(files)
                    and all(p.name.lower().endswith("_files") for p in folders)
                    and all(is_export(p) for p in files)
                )
        except OSError:
            return False
        return False

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = self._start()
        self._blind = False  # a file no channel could be told from failed: delete nothing
        channels: dict[str, list[Path]] = {}
        for file in self._files(path):
            if not is_export(file):
                yield Skipped(str(file), "not a DiscordChatExporter JSON export")
                continue
            ids = _IDS.search(read_head(file))
            key = f"{ids[1]}/{ids[2]}" if ids else f"?{file}"
            channels.setdefault(key, []).append(file)
        for key, files in channels.items():
            yield from self._channel(key, sorted(files, key=_part))

    def complete_scopes(self) -> list[str]:
        return [] if getattr(self, "_blind", False) else super().complete_scopes()

    def _files(self, path: Path) -> list[Path]:
        if path.is_dir():
            return [p for p in walk_files(path) if p.suffix.lower() == ".json"]
        stem, _ = _part(path)
        siblings = [
            p for p in path.parent.glob("*.json") if _part(p)[0] == stem and _PART.match(p.stem)
        ]
        return sorted({path, *siblings}, key=_part)

    def _channel(self, key: str, files: list[Path]) -> Iterator[SourceItem | Skipped]:
        scope = f"discord://{key}"
        known = not key.startswith("?")
        if known:
            self._read(scope)
        header: dict[str, Any] | None = None
        messages: list[ChatMessage] = []
        people: dict[str, str] = {}  # discord:ID → name, of the people seen in the channel
        for file in files:
            try:
                export = read_json_file(file)
                if not isinstance(export, dict) or not isinstance(export.get("messages"), list):
                    raise ValueError("expected an object with a messages array")
                guild = export.get("guild") or {}
                channel = export.get("channel") or {}
                if not (
                    isinstance(guild, dict) and isinstance(channel, dict) and channel.get("id")
                ):
                    raise ValueError("no channel id")
            except (ValueError, OSError) as exc:
                if known:
                    self._broken(scope)
                else:
                    self._blind = True
                yield Skipped(str(file), f"malformed Discord export: {exc}", failed=True)
                continue
            if not known:  # its head did not say: now the file does
                scope = f"discord://{guild.get('id') or '0'}/{channel['id']}"
                known = True
                self._read(scope)
            header = header or {"guild": guild, "channel": channel}
            dates = export.get("dateRange") or {}
            if isinstance(dates, dict) and (dates.get("after") or dates.get("before")):
                self._broken(scope)  # a date range is part of the channel: delete nothing
            for index, raw in enumerate(export["messages"], start=1):
                message = _message(raw, str(channel["id"]), people)
                if isinstance(message, str):
                    self._broken(scope)
                    where = raw.get("id") if isinstance(raw, dict) and raw.get("id") else index
                    yield Skipped(f"{file}#message {where}", message, failed=True)
                elif message is not None:
                    messages.append(message)
        if header is None or not messages:
            return
        yield from chat_items(_conversation(scope, header, people), messages)


def _message(raw: Any, channel: str, people: dict[str, str]) -> ChatMessage | str | None:
    """A message worth keeping, None for one that is not (a join, a bot, nothing said), or
    why it is malformed."""
    if not isinstance(raw, dict) or not raw.get("id"):
        return "malformed message: no id"
    author = raw.get("author")
    if not isinstance(author, dict):
        return "malformed message: no author"
    try:
        when = parse_iso(raw.get("timestamp"))
        edited = parse_iso(raw["timestampEdited"]) if raw.get("timestampEdited") else None
    except ValueError as exc:
        return f"malformed message: bad timestamp ({exc})"
    name = clean(str(author.get("nickname") or author.get("name") or author.get("id") or ""))
    if author.get("isBot"):
        return None
    if author.get("id"):
        people.setdefault(f"discord:{author['id']}", name)
    for mentioned in raw.get("mentions") or []:
        if isinstance(mentioned, dict) and mentioned.get("id") and not mentioned.get("isBot"):
            shown = mentioned.get("nickname") or mentioned.get("name") or mentioned["id"]
            people.setdefault(f"discord:{mentioned['id']}", clean(str(shown)))
    if raw.get("type", "Default") not in KEPT_TYPES:
        return None
    text = clean(str(raw.get("content") or ""))
    for attached in raw.get("attachments") or []:
        if isinstance(attached, dict):
            text += f" [file: {attached.get('fileName') or 'attachment'}]"
    for sticker in raw.get("stickers") or []:
        if isinstance(sticker, dict):
            text += f" [sticker: {sticker.get('name') or 'sticker'}]"
    for embed in raw.get("embeds") or []:
        if isinstance(embed, dict) and embed.get("title") and str(embed["title"]) not in text:
            text += f" [embed: {clean(str(embed['title']))}]"
    text = text.strip()
    if not text:
        return None
    reference = raw.get("reference") if isinstance(raw.get("reference"), dict) else {}
    reply_to = None
    if reference and reference.get("messageId") and reference.get("channelId", channel) == channel:
        reply_to = str(reference["messageId"])
    return ChatMessage(str(raw["id"]), name or "unknown", when, text, reply_to, edited)


def _conversation(scope: str, header: dict[str, Any], people: dict[str, str]) -> ChatConversation:
    guild, channel = header["guild"], header["channel"]
    guild_id = str(guild.get("id") or "0")
    channel_id = str(channel["id"])
    kind = PRIVATE_TYPES.get(str(channel.get("type")), "dm" if guild_id == "0" else "channel")
    name = clean(str(channel.get("name") or channel_id))
    shown = f"DM {name}" if kind in ("dm", "group-dm") else f"#{name}"
    access = None if kind == "channel" else tuple(people)
    place = "@me" if guild_id == "0" else guild_id

    def link(message_id: str) -> str:
        return f"https://discord.com/channels/{place}/{channel_id}/{message_id}"

    extra = {
        "guild": clean(str(guild.get("name") or "")),
        "guild_id": guild_id,
        "category": clean(str(channel.get("category") or "")),
        "topic": clean(str(channel.get("topic") or "")),
    }
    return ChatConversation(
        "discord",
        scope,
        channel_id,
        shown,
        kind,
        access,
        principals=list(people.values()),
        principal_ids=list(people),
        link=link,
        extra=extra,
    )

"""What the chat-archive connectors share (Discord, Telegram, WhatsApp, Messenger): messages
grouped into documents the way Slack's are, and each group as a :class:`SourceItem`.

A connector parses its format into :class:`ChatMessage`\\ s of one :class:`ChatConversation`
(a channel, a chat, a DM); :func:`group_messages` makes conversation windows (messages less
than ``WINDOW_GAP`` apart, at most ``WINDOW_MESSAGES``), and a reply to a message of an
earlier window joins that window, as a late Slack reply joins its thread. A document's id is
``SCOPE/ROOT`` — the conversation's scope and the id of the window's first message — so a
newer export updates the same documents, and only the windows whose messages changed.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..parsers._common import TextBuilder
from ..sources import Skipped, SourceItem
from .archive import MAX_MEMBER_BYTES, Archive, ArchiveTooLarge
from .slack import WINDOW_GAP, WINDOW_MESSAGES, conversation_item

# Marks that steer text direction and show nothing (WhatsApp puts U+200E before attachments
# and system lines), and the byte-order mark.
INVISIBLE = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_PHONE = re.compile(r"\+?[\d\s().\-\u00a0]{6,}")
_FRACTION = re.compile(r"(\.\d+)(?=[+-]\d\d:?\d\d$|$)")
HEAD_BYTES = 64 * 1024  # how much of a file detection reads


@dataclass
class ChatMessage:
    id: str  # unique in its conversation, without "/": the document id ends with it
    author: str
    when: datetime  # the time as the export shows it (its offset, if it has one)
    text: str
    reply_to: str | None = None
    edited: datetime | None = None


@dataclass
class ChatConversation:
    service: str  # discord | telegram | whatsapp | messenger
    scope: str  # its documents are SCOPE/ROOT; a complete read deletes what vanished under it
    id: str
    name: str  # "#general", "DM Alice", "Family"
    kind: str  # channel | private | dm | group-dm
    access: tuple[str, ...] | None  # None: open to whoever reads the collection
    principals: list[str] = field(default_factory=list)  # participants' names
    principal_ids: list[str] = field(default_factory=list)  # as access lists name them
    link: Callable[[str], str | None] | None = None  # a message id → a link to it
    extra: dict[str, Any] = field(default_factory=dict)


def group_messages(messages: Iterable[ChatMessage]) -> list[list[ChatMessage]]:
    """Conversation windows in time order; a reply to a message outside the open window
    (an earlier window, or the same one after a long silence) joins that message's window."""
    ordered = sorted(messages, key=lambda m: _instant(m.when))
    groups: list[list[ChatMessage]] = []
    group_of: dict[str, int] = {}
    current: int | None = None
    members = 0  # messages that joined the open window in time (late replies do not count)
    last: ChatMessage | None = None  # the open window's last message in time
    for message in ordered:
        if message.id in group_of:  # the same message twice (overlapping export files)
            continue
        closes = (
            last is None
            or _seconds(message.when, last.when) > WINDOW_GAP
            or members >= WINDOW_MESSAGES
        )
        target = group_of.get(message.reply_to) if message.reply_to else None
        if target is not None and (target != current or closes):
            groups[target].append(message)
            group_of[message.id] = target
            continue
        if current is None or closes:
            groups.append([])
            current, members = len(groups) - 1, 0
        groups[current].append(message)
        group_of[message.id] = current
        members += 1
        last = message
    return groups


def chat_item(conversation: ChatConversation, group: list[ChatMessage]) -> SourceItem:
    """One document: the group's messages, each as ``Author (time): text``."""
    root = group[0]
    source = f"{conversation.scope}/{root.id}"
    label = f"conversation {root.when:%Y-%m-%d %H:%M} by {root.author}"
    heading = (conversation.name, label)
    builder = TextBuilder()
    authors: list[str] = []
    by_id = {m.id: m for m in group}
    previous: ChatMessage | None = None
    for message in group:
        if message.author not in authors:
            authors.append(message.author)
        when = (
            f"{message.when:%H:%M}"
            if message.when.date() == root.when.date()
            else f"{message.when:%Y-%m-%d %H:%M}"
        )
        target = by_id.get(message.reply_to or "")
        if target is not None and target is not previous:
            when += f", replying to {target.author} {target.when:%H:%M}"
        edited = " (edited)" if message.edited else ""
        builder.add(f"{message.author} ({when}){edited}: {message.text}", heading)
        previous = message
    first_words = " ".join(root.text.split()[:8])
    title = f"{conversation.name}: {first_words}"
    url = conversation.link(root.id) if conversation.link else None
    metadata: dict[str, Any] = {
        "source_type": conversation.service,
        "channel": conversation.name,
        "channel_id": conversation.id,
        "conversation_kind": conversation.kind,
        "locator": f"{conversation.id}/{root.id}",
        "message_ids": [m.id for m in group],
        "authors": authors,
        "created_at": root.when.isoformat(),
        "updated_at": max((m.edited or m.when for m in group), key=_instant).isoformat(),
        # Who may read a private conversation. An open one lists nobody: everyone seen in a
        # server channel would change every document of it each time someone new writes.
        "principals": conversation.principals if conversation.access is not None else [],
        "principal_ids": conversation.principal_ids if conversation.access is not None else [],
        **conversation.extra,
    }
    if url:
        metadata["url"] = url
    return conversation_item(source, title, builder, metadata, conversation.access)


def chat_items(conversation: ChatConversation, messages: list[ChatMessage]) -> Iterator[SourceItem]:
    for group in group_messages(messages):
        yield chat_item(conversation, group)


# -- reading an export ---------------------------------------------------------------------


def open_archive(path: Path, service: str) -> Archive | Skipped:
    """The zip or folder of an export, or why it cannot be read (``service``: "Telegram")."""
    try:
        return Archive(path)
    except (zipfile.BadZipFile, OSError) as exc:
        return Skipped(str(path), f"unreadable {service} export: {exc}", failed=True)


# -- names, aliases and times -------------------------------------------------------------


def clean(text: str) -> str:
    """Text without invisible direction marks, its whitespace collapsed."""
    return " ".join(INVISIBLE.sub("", text).split())


def name_alias(service: str, name: str) -> str:
    """An access-list id for a person a source names only by name (``whatsapp:Alice_Chen``):
    whitespace becomes ``_`` (ids hold none), a phone number its digits (``+4917012345``)."""
    shown = clean(name)
    if _PHONE.fullmatch(shown) and sum(c.isdigit() for c in shown) >= 6:
        digits = "".join(c for c in shown if c.isdigit())
        return f"{service}:{'+' if shown.startswith('+') else ''}{digits}"
    return f"{service}:{'_'.join(shown.split()) or 'unknown'}"[:320]


def parse_iso(value: object) -> datetime:
    """An ISO 8601 time as exporters write it: ``Z`` for UTC, 1 to 7 digits of fractions
    (.NET writes 7; Python 3.10 reads 3 or 6)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], text)
    return datetime.fromisoformat(text)


def local_time(local: object, unix: object) -> datetime:
    """A time given as the exporter's wall clock (naive ISO) and as Unix seconds: aware, in
    the exporter's offset, so it shows as the app showed it and compares as an instant."""
    shown = parse_iso(local)
    if shown.tzinfo is not None or not isinstance(unix, (str, int)) or not str(unix).isdigit():
        return shown
    utc = datetime.fromtimestamp(int(unix), tz=timezone.utc)
    offset = shown - utc.replace(tzinfo=None)
    minutes = round(offset.total_seconds() / 60)
    if abs(minutes) > 18 * 60:  # not an offset: the two disagree; trust the wall clock
        return shown
    return utc.astimezone(timezone(timedelta(minutes=minutes)))


def _instant(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (_instant(later) - _instant(earlier)).total_seconds()


def read_head(path: Path, size: int = HEAD_BYTES) -> str:
    """The start of a file as text (for detection); "" when it cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(size)
    except OSError:
        return ""
    return data.decode("utf-8", "ignore").lstrip("\ufeff")


def read_json_file(path: Path) -> Any:
    """A JSON file, whole (bounded like a file in an archive); raises ValueError
    (json.JSONDecodeError says the line and column) or OSError."""
    if path.stat().st_size > MAX_MEMBER_BYTES:
        raise ArchiveTooLarge(f"over the {MAX_MEMBER_BYTES // 1024 // 1024} MB limit for one file")
    return json.loads(path.read_bytes().decode("utf-8-sig"))


def unique_ids(ids: Iterable[str]) -> list[str]:
    """Ids made unique in order: a repeat gets ``~2``, ``~3``… (messages of the same second)."""
    seen: dict[str, int] = {}
    out = []
    for value in ids:
        seen[value] = seen.get(value, 0) + 1
        out.append(value if seen[value] == 1 else f"{value}~{seen[value]}")
    return out

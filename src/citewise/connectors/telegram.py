"""Telegram Desktop's JSON export: ``result.json`` of one chat (*Export chat history*: the
chat object {name, type, id, messages}) or of the account (*Settings → Advanced → Export
Telegram data*: {about, personal_information, chats {list}, left_chats {list}, …}), given
as the file, its ``ChatExport_…``/``DataExport_…`` folder, or a zip of that folder.

Messages are {id, type "message"|"service", date (the exporting machine's wall clock),
date_unixtime, from, from_id ("user123"), text (a string, or a list of strings and
{type, text} entities), reply_to_message_id, edited, photo/file/media_type, poll}; service
messages (joins, pins, calls) are dropped. ``result.json`` is read whole (up to 256 MB).

Documents are conversation windows (chat.py); a reply to an earlier window joins it. Ids are
``telegram://CHAT/MESSAGE``. Supergroups and channels link to the message
(``https://t.me/c/CHAT/MESSAGE``, which opens for their members); other chats have no link.
Public groups and channels are open to the collection; every other chat only to the people
seen in it (``telegram:user123``: its authors and, in a personal chat, the other person and
the account that exported it).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
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
    local_time,
    open_archive,
    read_head,
    read_json_file,
)

CHAT_TYPES = {
    "personal_chat": "dm",
    "bot_chat": "dm",
    "saved_messages": "dm",
    "replies": "dm",
    "verification_codes": "dm",
    "private_group": "private",
    "private_supergroup": "private",
    "private_channel": "private",
    "public_supergroup": "channel",
    "public_channel": "channel",
}
LINKED = {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
_FULL = re.compile(r'^\s*\{\s*"about"\s*:')
_CHAT = re.compile(r'^\s*\{\s*"(?:name|type|id)"\s*:')
_CHAT_TYPE = re.compile(r'"type"\s*:\s*"(' + "|".join(CHAT_TYPES) + r')"')
RESULT = "result.json"


def looks_like_export(head: str, name: str) -> bool:
    """Whether a JSON file's first bytes are Telegram Desktop's result.json."""
    if _FULL.match(head):
        return name == RESULT or '"personal_information"' in head or '"chats"' in head
    return bool(_CHAT.match(head) and _CHAT_TYPE.search(head) and '"messages"' in head)


class TelegramExport(BaseConnector):
    name = "telegram"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        try:
            if path.is_dir():
                result = path / RESULT
                return result.is_file() and looks_like_export(read_head(result), RESULT)
            if path.suffix.lower() == ".json" and path.is_file():
                return looks_like_export(read_head(path), path.name)
            if path.suffix.lower() == ".zip" and path.is_file():
                names = [n for n in zip_names(path) if PurePosixPath(n).name == RESULT]
                if not names or min(n.count("/") for n in names) > 1:
                    return False
                with zipfile.ZipFile(path) as archive, archive.open(min(names, key=len)) as f:
                    head = f.read(4096).decode("utf-8", "ignore").lstrip("\ufeff")
                return looks_like_export(head, RESULT)
        except (OSError, zipfile.BadZipFile, KeyError):
            return False
        return False

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = self._start()
        if path.is_file() and path.suffix.lower() == ".json":
            try:
                loaded = read_json_file(path)
            except (ValueError, OSError) as exc:
                yield Skipped(str(path), f"malformed Telegram export: {exc}", failed=True)
                return
            yield from self._export(loaded, str(path))
            return
        archive = open_archive(path, "Telegram")
        if isinstance(archive, Skipped):
            yield archive
            return
        try:
            results = [n for n in archive.names if PurePosixPath(n).name == RESULT]
            if not results:
                yield Skipped(str(path), "no result.json: not a Telegram Desktop JSON export")
            for name in results:
                where = f"{path}/{name}"
                try:
                    loaded = _json(archive.read(name))
                except (ValueError, OSError, zipfile.BadZipFile) as exc:
                    yield Skipped(where, f"malformed Telegram export: {exc}", failed=True)
                    continue
                yield from self._export(loaded, where)
        finally:
            archive.close()

    def _export(self, loaded: Any, where: str) -> Iterator[SourceItem | Skipped]:
        if not isinstance(loaded, dict):
            yield Skipped(where, "malformed Telegram export: not a JSON object", failed=True)
            return
        owner = None
        if isinstance(loaded.get("chats"), dict) or "about" in loaded:  # the whole account's
            me = loaded.get("personal_information") or {}
            owner = (
                f"telegram:user{me['user_id']}"
                if isinstance(me, dict) and me.get("user_id")
                else None
            )
            chats: list[Any] = []
            for part in ("chats", "left_chats"):
                listed = (
                    (loaded.get(part) or {}).get("list")
                    if isinstance(loaded.get(part), dict)
                    else None
                )
                chats.extend(listed if isinstance(listed, list) else [])
        else:
            chats = [loaded]
        for index, chat in enumerate(chats, start=1):
            yield from self._chat(chat, where, index, owner)

    def _chat(
        self, chat: Any, file: str, index: int, owner: str | None
    ) -> Iterator[SourceItem | Skipped]:
        if (
            not isinstance(chat, dict)
            or chat.get("id") is None
            or not isinstance(chat.get("messages"), list)
        ):
            yield Skipped(
                f"{file}#chat {index}", "malformed chat: no id or no messages array", failed=True
            )
            return
        chat_id = str(chat["id"])
        where = f"{file}#chat {chat_id}"
        scope = f"telegram://{chat_id}"
        self._read(scope)
        kind_name = str(chat.get("type") or "")
        people: dict[str, str] = {}
        messages: list[ChatMessage] = []
        for index, raw in enumerate(chat["messages"], start=1):
            message = _message(raw, people)
            if isinstance(message, str):
                self._broken(scope)
                mid = (
                    raw.get("id")
                    if isinstance(raw, dict) and raw.get("id") is not None
                    else f"#{index}"
                )
                yield Skipped(f"{where} message {mid}", message, failed=True)
            elif message is not None:
                messages.append(message)
        if not messages:
            return
        kind = CHAT_TYPES.get(kind_name, "private")  # an unknown kind of chat: closed
        ids = list(people)
        if kind_name in ("personal_chat", "bot_chat"):
            ids.append(f"telegram:user{chat_id}")  # the other person, who may never have written
        if owner:
            ids.append(owner)
        ids = list(dict.fromkeys(ids))
        name = clean(str(chat.get("name") or "")) or _unnamed(kind_name, chat_id)
        shown = f"DM {name}" if kind_name in ("personal_chat", "bot_chat") else name
        username = str(chat.get("username") or "").lstrip("@")

        def link(message_id: str) -> str | None:
            if username:
                return f"https://t.me/{username}/{message_id}"
            return f"https://t.me/c/{chat_id}/{message_id}" if kind_name in LINKED else None

        conversation = ChatConversation(
            "telegram",
            scope,
            chat_id,
            shown,
            kind,
            None if kind == "channel" else tuple(ids),
            principals=[people.get(i, i) for i in ids],
            principal_ids=ids,
            link=link,
            extra={"chat_type": kind_name},
        )
        yield from chat_items(conversation, messages)


def _unnamed(kind: str, chat_id: str) -> str:
    return {
        "saved_messages": "Saved Messages",
        "replies": "Replies",
        "verification_codes": "Verification Codes",
    }.get(kind, f"chat {chat_id}")


def _json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8-sig"))


def _message(raw: Any, people: dict[str, str]) -> ChatMessage | str | None:
    """A message worth keeping, None for one that is not (a service message, nothing said),
    or why it is malformed."""
    if not isinstance(raw, dict) or raw.get("id") is None:
        return "malformed message: no id"
    try:
        when = local_time(raw.get("date"), raw.get("date_unixtime"))
        edited = (
            local_time(raw["edited"], raw.get("edited_unixtime")) if raw.get("edited") else None
        )
    except ValueError as exc:
        return f"malformed message: bad date ({exc})"
    sender = raw.get("from_id") or raw.get("actor_id")
    name = clean(str(raw.get("from") or raw.get("actor") or "")) or "Deleted Account"
    if isinstance(sender, int) and not isinstance(sender, bool):
        sender = f"user{sender}"  # exports before 2021 wrote a user's bare id
    if isinstance(sender, str) and sender:
        people.setdefault(f"telegram:{sender}", name)
    if raw.get("type", "message") != "message":
        return None
    text = flatten(raw.get("text"))
    if raw.get("forwarded_from"):
        text = f"(forwarded from {clean(str(raw['forwarded_from']))}) {text}"
    text = clean(text + _media(raw))
    if not text:
        return None
    reply = raw.get("reply_to_message_id")
    same_chat = not raw.get("reply_to_peer_id")
    reply_to = str(reply) if reply is not None and same_chat else None
    return ChatMessage(str(raw["id"]), name, when, text, reply_to, edited)


def flatten(text: Any) -> str:
    """Telegram's text: a string, or a list of strings and entities ({type, text}; a
    ``text_link`` also has its ``href``)."""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        return ""
    parts = []
    for piece in text:
        if isinstance(piece, str):
            parts.append(piece)
        elif isinstance(piece, dict):
            shown = str(piece.get("text") or "")
            href = piece.get("href")
            if piece.get("type") == "text_link" and href and href != shown:
                shown = f"{shown} ({href})"
            parts.append(shown)
    return "".join(parts)


def _media(raw: dict[str, Any]) -> str:
    """What a message attaches, as a person sees it in the chat."""
    kind = raw.get("media_type")
    name = raw.get("file_name") or raw.get("title")
    if raw.get("photo"):
        return " [photo]"
    if kind == "sticker":
        return f" {raw.get('sticker_emoji') or '[sticker]'}"
    if kind in ("voice_message", "video_message"):
        return f" [{kind.replace('_', ' ')}]"
    if kind == "animation":
        return " [GIF]"
    if kind == "audio_file":
        who = " – ".join(str(raw[k]) for k in ("performer", "title") if raw.get(k))
        return f" [audio: {who or name or 'audio'}]"
    if kind or raw.get("file"):
        return f" [file: {name or PurePosixPath(str(raw.get('file') or 'file')).name}]"
    poll = raw.get("poll")
    if isinstance(poll, dict):
        answers = " / ".join(
            str(a.get("text")) for a in poll.get("answers") or [] if isinstance(a, dict)
        )
        return f" [poll: {poll.get('question') or ''}: {answers}]"
    if isinstance(raw.get("location_information"), dict):
        place = raw.get("place_name") or raw.get("address")
        return f" [location: {place}]" if place else " [location]"
    contact = raw.get("contact_information")
    if isinstance(contact, dict):
        who = " ".join(str(contact[k]) for k in ("first_name", "last_name") if contact.get(k))
        return f" [contact: {who or contact.get('phone_number') or 'contact'}]"
    return ""

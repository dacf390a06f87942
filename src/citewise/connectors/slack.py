"""Slack workspace exports (the zip Slack's "Export data" produces, or its unzipped folder).

Layout: ``users.json``, ``channels.json`` (public), ``groups.json`` (private),
``dms.json``, ``mpims.json``, and one folder per conversation holding a
``YYYY-MM-DD.json`` array of messages for each day.

One document per thread (``thread_ts``), and outside threads one per conversation
window (messages less than ``WINDOW_GAP`` apart, at most ``WINDOW_MESSAGES``).
Its id is the permalink path ``slack://TEAM/archives/CHANNEL/pTS``, so a newer
export updates the same documents. Exports are read one conversation at a time:
memory follows the largest channel, never the whole export.

An export covers the dates of its day files: what is missing from it is deleted only
when it is dated inside them, so an export of a later period keeps older history.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import emoji

from ..documents import Document, ParsedDocument
from ..names import fold_address
from ..parsers._common import TextBuilder
from ..sources import Skipped, SourceItem, document_from_parsed
from .archive import Archive, zip_names
from .base import BaseConnector, PartialScope

WINDOW_GAP = 30 * 60  # seconds of silence that end a conversation window
WINDOW_MESSAGES = 40
# Subtypes that carry what people said; joins, leaves, topic changes and bots are noise.
KEPT_SUBTYPES = {None, "thread_broadcast", "file_share", "me_message"}
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
_MARKUP = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":[a-z0-9_+\-']+:")


@dataclass
class Conversation:
    id: str
    name: str  # "#general", "🔒 #design", "DM Alice, Bob"
    folder: str
    members: list[str]
    kind: str  # channel | private | dm | group-dm


class SlackExport(BaseConnector):
    name = "slack"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        if path.is_dir():
            return (path / "channels.json").is_file() and (path / "users.json").is_file()
        if path.suffix.lower() == ".zip" and path.is_file():
            names = {PurePosixPath(n).name for n in zip_names(path)}
            return {"channels.json", "users.json"} <= names
        return False

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = Path(self.location).expanduser().resolve()
        self._complete, self._incomplete, self._team_complete = [], set(), False
        try:
            export = Archive(path, ("users.json", "channels.json"))
        except (zipfile.BadZipFile, OSError) as exc:
            yield Skipped(str(path), f"unreadable Slack export: {exc}", failed=True)
            return
        try:
            users, team = self._users(export)
            if users is None:
                yield Skipped(f"{path}/users.json", "missing or malformed users.json", failed=True)
                return
            self.team = team
            days = sorted(
                n[-15:-5]
                for n in export.names
                if "/" in n and _DAY_FILE.match(n.rsplit("/", 1)[-1])
            )
            self._dates = (days[0], days[-1]) if days else None
            broken = False
            for conversation in self._conversations(export, users):
                scope = f"slack://{team}/archives/{conversation.id}"
                self._read(scope)
                for item in self._conversation_items(export, path, conversation, users, scope):
                    if isinstance(item, Skipped):
                        broken = True
                    yield item
            self._team_complete = not broken and self._listing_ok
        finally:
            export.close()

    def complete_scopes(self) -> list[str]:
        """The conversations read (the whole team when every one was), for the export's
        dates only: a document dated outside them is kept."""
        scopes = super().complete_scopes()
        if getattr(self, "_team_complete", False):
            scopes = [f"slack://{self.team}"]  # covers channels that vanished from the export
        dates = getattr(self, "_dates", None)
        if dates is None:  # no day files: the export vouches for no date
            return [PartialScope(s, lambda _: False, "as the export holds no day") for s in scopes]
        first, last = dates
        kept = f"outside this export's dates {first}…{last}"
        return [PartialScope(s, partial(_dated_within, first, last), kept) for s in scopes]

    # -- the export's directory files ------------------------------------------------

    def _users(self, export: Archive) -> tuple[dict[str, str] | None, str]:
        try:
            records = json.loads(export.read("users.json"))
        except (KeyError, FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None, ""
        names, teams = {}, []
        self._emails: dict[str, str] = {}
        for user in records:
            profile = user.get("profile") or {}
            if isinstance(profile.get("email"), str) and "@" in profile["email"]:
                self._emails[user["id"]] = fold_address(profile["email"])
            names[user["id"]] = (
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or user["id"]
            )
            if user.get("team_id"):
                teams.append(user["team_id"])
        team = max(set(teams), key=teams.count) if teams else "workspace"
        return names, team

    def _conversations(self, export: Archive, users: dict[str, str]) -> list[Conversation]:
        self._listing_ok = True
        found: list[Conversation] = []
        for listing, kind in (
            ("channels.json", "channel"),
            ("groups.json", "private"),
            ("mpims.json", "group-dm"),
            ("dms.json", "dm"),
        ):
            if not export.has(listing):
                continue
            try:
                records = json.loads(export.read(listing))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._listing_ok = False
                continue
            for record in records:
                members = record.get("members") or []
                if kind in ("channel", "private"):
                    name = f"#{record['name']}"
                    folder = record["name"]
                else:
                    name = "DM " + ", ".join(users.get(m, m) for m in members)
                    folder = record.get("name") or record["id"]
                found.append(Conversation(record["id"], name, folder, members, kind))
        return found

    # -- messages → threads and windows → items --------------------------------------------

    def _conversation_items(
        self,
        export: Archive,
        path: Path,
        conversation: Conversation,
        users: dict[str, str],
        scope: str,
    ) -> Iterator[SourceItem | Skipped]:
        messages: list[dict[str, Any]] = []
        days = sorted(
            n
            for n in export.names
            if n.startswith(conversation.folder + "/") and _DAY_FILE.match(n.rsplit("/", 1)[-1])
        )
        for day in days:
            try:
                loaded = json.loads(export.read(day))
                if not isinstance(loaded, list):
                    raise ValueError("expected a JSON array of messages")
            except (
                json.JSONDecodeError,
                UnicodeDecodeError,
                ValueError,
                zipfile.BadZipFile,
                OSError,
            ) as exc:
                self._broken(scope)
                yield Skipped(f"{path}/{day}", f"malformed day file: {exc}", failed=True)
                continue
            messages.extend(m for m in loaded if isinstance(m, dict) and m.get("ts"))
        for group in _group(messages):
            yield self._item(conversation, group, users, scope)

    def _item(
        self,
        conversation: Conversation,
        group: list[dict[str, Any]],
        users: dict[str, str],
        scope: str,
    ) -> SourceItem:
        root = group[0]
        threaded = bool(root.get("thread_ts")) and root.get("thread_ts") == root.get("ts")
        source = f"{scope}/p{root['ts'].replace('.', '')}"
        started = _when(root["ts"])
        author = _author(root, users)
        label = f"{'thread' if threaded else 'conversation'} {started:%Y-%m-%d %H:%M} by {author}"
        builder = TextBuilder()
        heading = (conversation.name, label)
        authors: list[str] = []
        for message in group:
            who = _author(message, users)
            if who not in authors:
                authors.append(who)
            edited = " (edited)" if message.get("edited") else ""
            text = render(message, users)
            builder.add(f"{who} ({_when(message['ts']):%H:%M}){edited}: {text}", heading)
        first_words = " ".join(render(root, users).split()[:8])
        title = f"{conversation.name}: {first_words}"
        metadata = {
            "source_type": "slack",
            "channel": conversation.name,
            "channel_id": conversation.id,
            "conversation_kind": conversation.kind,
            "thread_ts": root["ts"] if threaded else None,
            "locator": f"archives/{conversation.id}/p{root['ts'].replace('.', '')}",
            "authors": authors,
            "created_at": started.isoformat(),
            "updated_at": _when(
                max(((m.get("edited") or {}).get("ts") or m["ts"] for m in group), key=float)
            ).isoformat(),
            "principals": [users.get(m, m) for m in conversation.members],
            "principal_ids": conversation.members,
        }
        return conversation_item(source, title, builder, metadata, self._access(conversation))

    def _access(self, conversation: Conversation) -> tuple[str, ...] | None:
        """Who may read a conversation: a public channel is open to everyone who reads the
        collection (every member of the Slack workspace could read it); a private channel
        or a DM only its members — as ``slack:ID`` and, where users.json has it, their
        e-mail address. One whose export lists no members is read by nobody: fail closed."""
        if conversation.kind == "channel":
            return None
        emails = getattr(self, "_emails", {})
        members = [f"slack:{m}" for m in conversation.members]
        members += [emails[m] for m in conversation.members if m in emails]
        return tuple(dict.fromkeys(members))


def conversation_item(
    source: str,
    title: str,
    builder: TextBuilder,
    metadata: dict[str, Any],
    access: tuple[str, ...] | None,
) -> SourceItem:
    """The item of a conversation's document; its hash covers the title, text, metadata and
    who may read it, so a change to any of them updates the document."""
    text = builder.text
    content_hash = hashlib.sha256(
        (title + "\x00" + text + json.dumps([metadata, access], sort_keys=True)).encode()
    ).hexdigest()
    parsed = ParsedDocument(text, builder.blocks, title, access=access)

    def load() -> Document:
        return document_from_parsed(source, parsed, content_hash, metadata)

    return SourceItem(source=source, content_hash=content_hash, load=load)


def _group(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Threads (root + replies, wherever their days) and time windows of the rest."""
    kept = [
        m
        for m in messages
        if m.get("subtype") in KEPT_SUBTYPES
        and not m.get("bot_id")
        and (m.get("text") or m.get("files"))
    ]
    kept.sort(key=lambda m: float(m["ts"]))
    threads: dict[str, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    seen_ts: set[str] = set()
    for message in kept:
        if message["ts"] in seen_ts:  # the same message in two day files
            continue
        seen_ts.add(message["ts"])
        thread = message.get("thread_ts")
        if thread:
            threads.setdefault(thread, []).append(message)
        else:
            loose.append(message)
    groups = [
        sorted(t, key=lambda m: (m["ts"] != m.get("thread_ts"), float(m["ts"])))
        for t in threads.values()
    ]
    window: list[dict[str, Any]] = []
    for message in loose:
        if window and (
            float(message["ts"]) - float(window[-1]["ts"]) > WINDOW_GAP
            or len(window) >= WINDOW_MESSAGES
        ):
            groups.append(window)
            window = []
        window.append(message)
    if window:
        groups.append(window)
    return sorted(groups, key=lambda g: float(g[0]["ts"]))


def render(message: dict[str, Any], users: dict[str, str]) -> str:
    """Slack's markup as a person reads it: names for ids, labels for links, emoji."""

    def markup(match: re.Match[str]) -> str:
        body = match.group(1)
        target, _, label = body.partition("|")
        if target.startswith("@"):
            return "@" + (users.get(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!subteam^"):
            return label or "@team"
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    text = _MARKUP.sub(markup, message.get("text") or "")
    text = html.unescape(text)
    text = _EMOJI.sub(lambda m: emoji.emojize(m.group(), language="alias"), text)
    for attached in message.get("files") or []:
        text += f" [file: {attached.get('title') or attached.get('name') or 'attachment'}]"
    return " ".join(text.split())


def _author(message: dict[str, Any], users: dict[str, str]) -> str:
    profile = message.get("user_profile") or {}
    return (
        users.get(message.get("user", ""))
        or profile.get("real_name")
        or message.get("username")
        or message.get("user")
        or "unknown"
    )


def _dated_within(first: str, last: str, source: str) -> bool:
    """Whether a document (``…/pTS``: its first message's time) is of a day in first…last."""
    match = re.search(r"/p(\d{7,})$", source)
    if match is None:
        return True
    day = f"{datetime.fromtimestamp(int(match.group(1)[:-6]), tz=timezone.utc):%Y-%m-%d}"
    return first <= day <= last


def _when(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc)

"""WhatsApp's *Export chat*: the ``.txt`` (``WhatsApp Chat with Alice.txt`` from Android,
``_chat.txt`` from iOS), the ``.zip`` WhatsApp makes around it (with media), or a folder of
them.

Each message starts with its date and time, in the phone's locale:

    12/31/23, 9:15 PM - Alice: text              Android, US (12-hour, U+202F before PM)
    31/12/2023, 21:15 - Alice: text              Android, UK and most of Europe
    [31.12.23, 21:15:42] Alice: text             iOS, German
    [12/31/23, 9:15:42 PM] Alice: text           iOS, US

and goes on over the lines that do not; system lines (joins, the encryption notice) have no
``Name:`` and are dropped. Whether a file writes the day or the month first is decided per
file: the order under which every date is a date (a first field over 12 is a day), then the
one under which time never runs backwards, then 12-hour clocks as month first. A line that
starts like a message but whose date or time cannot be read is reported with its file and
line number; the rest of the chat is kept.

The export has no ids and no time zone: documents are conversation windows (chat.py) with
ids ``whatsapp://CHAT/TIME`` (the chat's name from the file name, the window's first message
time), and a chat is open only to the people who wrote in it, by the name the export shows
(``whatsapp:Alice_Chen``, or a phone number's digits ``whatsapp:+4917012345``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path, PurePosixPath

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

_S = "[\\s\u202f\u00a0]"  # WhatsApp puts a narrow no-break space before AM/PM
_DATE = r"(?P<date>\d{1,4}([./-])\d{1,2}\2\d{1,4})"
_TIME = r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
_AMPM = rf"(?:{_S}*(?P<ampm>[AaPp]\.?{_S}?[Mm]\.?))?"
ANDROID = re.compile(rf"^{_DATE},?{_S}+{_TIME}{_AMPM}{_S}+[-–]{_S}(?P<rest>.*)$")
IOS = re.compile(rf"^\[{_DATE},?{_S}+{_TIME}{_AMPM}\]{_S}?(?P<rest>.*)$")
# A line that starts like a message header in a format not read above.
LOOSE = re.compile(
    r"^\[?(?=[^\]\n]{0,40}?\d{1,4}\s?[./\-年]\s?\d{1,2}\s?[./\-月])(?=[^\]\n]{0,40}?\d[:.]\d\d)"
    r"[\d\s./,:\-\u202f\u00a0年月日APMapm]{6,40}?(?:\]|\s[-–]\s)"
)
_AUTHOR = re.compile(r"^(?P<name>[^:\"“”„«»\n]{1,80}?):(?:[\s\u202f\u00a0](?P<text>.*))?$")
_ATTACHED = re.compile(r"<attached: (?P<name>[^<>]+)>")
_FILE_ATTACHED = re.compile(r"^(?P<name>\S+\.\w{2,5}) \([^()]+\)\s*")
_EDITED = re.compile(
    r"\s*<[^<>]*(?:edited|bearbeitet|editado|modifié|modificato|bewerkt)[^<>]*>\s*$", re.I
)
_DELETED = {
    "this message was deleted",
    "you deleted this message",
    "diese nachricht wurde gelöscht",
    "du hast diese nachricht gelöscht",
    "se eliminó este mensaje",
    "eliminaste este mensaje",
    "ce message a été supprimé",
    "vous avez supprimé ce message",
    "waiting for this message. this may take a while",
    "null",
}
_CHAT_NAME = re.compile(
    r"^(?:WhatsApp[- ]Chat|Chat de WhatsApp|Discussion WhatsApp|Conversa do WhatsApp|"
    r"WhatsApp[- ]chat|Chat WhatsApp)\s*(?:-|with|mit|con|avec|com|met|med|z|ze)?\s+(?P<name>.+)$",
    re.I,
)
_MEDIA = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".heic",
    ".mp4",
    ".3gp",
    ".mov",
    ".opus",
    ".ogg",
    ".m4a",
    ".mp3",
    ".aac",
    ".amr",
    ".vcf",
    ".wav",
}


@dataclass
class _Header:
    line: int
    numbers: tuple[str, str, str]
    clock: tuple[int, int, int | None]
    ampm: str | None
    rest: str


def header(line: str) -> _Header | None:
    """The date, time and rest of a line that starts a message, if it does."""
    bare = line.lstrip("\u200e\u200f\ufeff")
    match = IOS.match(bare) or ANDROID.match(bare)
    if match is None:
        return None
    numbers = re.split(r"[./-]", match["date"])
    clock = [int(n) for n in re.split(r"[:.]", match["time"])]
    return _Header(
        0,
        (numbers[0], numbers[1], numbers[2]),
        (clock[0], clock[1], clock[2] if len(clock) > 2 else None),
        match["ampm"],
        match["rest"],
    )


def is_chat(head: str) -> bool:
    """Whether text starts as a WhatsApp export does: its first line is a message header."""
    first = next((line for line in head.splitlines() if line.strip()), "")
    return header(first) is not None


def _when(found: _Header, order: str) -> datetime:
    """The header's time under a date order (DMY, MDY; a four-digit first field is a year);
    ValueError when it is no time."""
    a, b, c = (int(n) for n in found.numbers)
    if len(found.numbers[0]) == 4:
        year, month, day = a, b, c
    elif order == "DMY":
        day, month, year = a, b, c
    else:
        month, day, year = a, b, c
    if year < 100:
        year += 2000
    hour, minute, second = found.clock
    if found.ampm:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} on a 12-hour clock")
        hour = hour % 12 + (12 if found.ampm.lower().startswith("p") else 0)
    return datetime(year, month, day, hour, minute, second or 0)


def date_order(headers: list[_Header]) -> str:
    """DMY or MDY for a file: the order under which most dates are dates, then the one under
    which time runs backwards least, then 12-hour clocks as month first (US)."""

    def times(order: str) -> list[datetime]:
        found = []
        for h in headers:
            try:
                found.append(_when(h, order))
            except ValueError:
                continue
        return found

    scored = []
    for order in ("DMY", "MDY"):
        valid = times(order)
        backwards = sum(1 for x, y in pairwise(valid) if y < x)
        scored.append((-len(valid), backwards, order))
    scored.sort()
    if scored[0][:2] != scored[1][:2]:
        return scored[0][2]
    return "MDY" if any(h.ampm for h in headers) else "DMY"


def chat_name(member: str, container: str) -> str:
    """The chat's name from its file name (``WhatsApp Chat with Alice.txt``), or for iOS's
    ``_chat.txt`` from the zip or folder around it (``WhatsApp Chat - Alice.zip``)."""
    stem = PurePosixPath(member).stem
    if stem.lower() == "_chat" or not stem:
        stem = Path(container).stem if container.lower().endswith(".zip") else Path(container).name
    match = _CHAT_NAME.match(stem.strip())
    return clean(match["name"] if match else stem) or "chat"


class WhatsAppExport(BaseConnector):
    name = "whatsapp"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        try:
            if path.is_file() and path.suffix.lower() == ".txt":
                return is_chat(read_head(path, 4096))
            if path.is_file() and path.suffix.lower() == ".zip":
                return bool(_zip_chats(path))
            if path.is_dir():
                # A folder of chats and their media only: anything else is files.
                entries = [p for p in path.iterdir() if not p.name.startswith(".")]
                chats = [p for p in entries if p.is_file() and cls._is_chat_file(p)]
                rest = [p for p in entries if p not in chats]
                return bool(chats) and all(p.is_file() and p.suffix.lower() in _MEDIA for p in rest)
        except (OSError, zipfile.BadZipFile):
            return False
        return False

    @staticmethod
    def _is_chat_file(path: Path) -> bool:
        if path.suffix.lower() == ".txt":
            return is_chat(read_head(path, 4096))
        return path.suffix.lower() == ".zip" and bool(_zip_chats(path))

    def items(self) -> Iterator[SourceItem | Skipped]:
        path = self._start()
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                if entry.suffix.lower() == ".zip" or (
                    entry.suffix.lower() == ".txt" and is_chat(read_head(entry, 4096))
                ):
                    yield from self._location(entry)
            return
        yield from self._location(path)

    def _location(self, path: Path) -> Iterator[SourceItem | Skipped]:
        if path.suffix.lower() != ".zip":
            try:
                data = path.read_bytes()
            except OSError as exc:
                yield Skipped(str(path), f"cannot read: {exc.strerror or exc}", failed=True)
                return
            yield from self._chat(data, str(path), chat_name(path.name, str(path.parent)))
            return
        archive = open_archive(path, "WhatsApp")
        if isinstance(archive, Skipped):
            yield archive
            return
        try:
            members = [n for n in archive.names if n.lower().endswith(".txt") and "/" not in n]
            found = False
            for member in members:
                try:
                    data = archive.read(member)
                except (OSError, zipfile.BadZipFile) as exc:
                    yield Skipped(f"{path}/{member}", f"unreadable: {exc}", failed=True)
                    continue
                if member.lower() != "_chat.txt" and not is_chat(
                    data[:4096].decode("utf-8", "ignore")
                ):
                    continue
                found = True
                yield from self._chat(data, f"{path}/{member}", chat_name(member, str(path)))
            if not found:
                yield Skipped(str(path), "no WhatsApp chat (.txt) in the zip")
        finally:
            archive.close()

    def _chat(self, data: bytes, where: str, name: str) -> Iterator[SourceItem | Skipped]:
        scope = "whatsapp://" + name.replace("%", "%25").replace("/", "%2F")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Skipped(where, f"not UTF-8 text: {exc}", failed=True)
            return
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        headers: list[_Header] = []
        starts: dict[int, _Header | None] = {}  # line number → its header (None: unreadable)
        for number, line in enumerate(lines, start=1):
            found = header(line)
            if found is not None:
                found.line = number
                headers.append(found)
                starts[number] = found
            elif LOOSE.match(line.lstrip("\u200e\u200f\ufeff")):
                starts[number] = None
        if not headers:
            yield Skipped(
                where, "no WhatsApp messages: no line starts with a date and time", failed=True
            )
            return
        self._read(scope)
        order = date_order(headers)
        parsed: list[tuple[datetime, bool, str, list[str]]] = []  # when, seconds, rest, more
        current: list[str] | None = None
        started = False  # past the first message header
        for number, line in enumerate(lines, start=1):
            if number not in starts:
                if current is not None:
                    current.append(line)
                elif line.strip() and not started:
                    self._broken(scope)
                    yield Skipped(f"{where}:{number}", "not a WhatsApp message line", failed=True)
                continue
            found = starts[number]
            started = True
            try:
                if found is None:
                    raise ValueError("a date or time format not known")
                when = _when(found, order)
            except ValueError as exc:
                self._broken(scope)
                shown = clean(line)[:60]
                reason = f"unreadable message date or time ({exc}): {shown!r}"
                yield Skipped(f"{where}:{number}", reason, failed=True)
                current = None
                continue
            current = []
            parsed.append((when, found.clock[2] is not None, found.rest, current))
        messages = _messages(parsed)
        if not messages:
            return
        people = {name_alias("whatsapp", m.author): m.author for m in messages}
        conversation = ChatConversation(
            "whatsapp",
            scope,
            name,
            name,
            "dm" if len(people) <= 2 else "group-dm",
            tuple(people),
            principals=list(people.values()),
            principal_ids=list(people),
            extra={"date_order": order},
        )
        yield from chat_items(conversation, messages)


def _messages(parsed: list[tuple[datetime, bool, str, list[str]]]) -> list[ChatMessage]:
    """What people said, with ids from their times (``2023-12-31T21:15``, ``~2`` for the
    second message of the same minute)."""
    kept: list[tuple[datetime, bool, str, str, bool]] = []
    for when, seconds, rest, more in parsed:
        if rest.startswith(("\u200e", "\u200f")):
            continue  # iOS marks system lines so
        match = _AUTHOR.match(rest)
        if match is None:
            continue  # a system line: a join, a rename, the encryption notice
        body = "\n".join([match["text"] or "", *more])
        edited = bool(_EDITED.search(body))
        body = _EDITED.sub("", body)
        rendered = _render(body)
        if rendered is None:
            continue
        kept.append((when, seconds, clean(match["name"]), rendered, edited))
    ids = unique_ids(
        when.isoformat(timespec="seconds" if seconds else "minutes") for when, seconds, *_ in kept
    )
    return [
        ChatMessage(mid, author, when, body, None, when if edited else None)
        for mid, (when, _, author, body, edited) in zip(ids, kept, strict=True)
    ]


def _render(body: str) -> str | None:
    """A message as a person reads it, None for one that says nothing (a deleted message)."""
    stripped = body.strip()
    if stripped.startswith("\u200e"):  # iOS: an attachment, or a notice such as "deleted"
        attached = _ATTACHED.search(stripped)
        return f"[file: {attached['name']}]" if attached else None
    text = clean(stripped)
    if text.lower().rstrip(".") in _DELETED:
        return None
    if re.fullmatch(r"<[^<>]+>", text):  # <Media omitted>, <Medien ausgeschlossen>
        return "[media omitted]"
    attached = _FILE_ATTACHED.match(text)
    if attached:
        text = f"[file: {attached['name']}] {text[attached.end() :]}".strip()
    return text or None


def _zip_chats(path: Path) -> list[str]:
    """The chat texts at the top of a WhatsApp zip: ``_chat.txt``, or a ``.txt`` that starts
    with a message header."""
    names = [n for n in zip_names(path) if n.lower().endswith(".txt") and "/" not in n]
    if "_chat.txt" in [n.lower() for n in names]:
        return names
    found = []
    with zipfile.ZipFile(path) as archive:
        for name in names:
            with archive.open(name) as member:
                if is_chat(member.read(4096).decode("utf-8", "ignore")):
                    found.append(name)
    return found

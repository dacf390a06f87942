"""Gmail through a Google Takeout ``.mbox`` (stdlib ``mailbox`` and ``email``).

One document per thread (Gmail's ``X-GM-THRID``, else ``References`` /
``In-Reply-To``), one section per message with its sender and date, quoted
replies removed (they repeat the message before), attachments parsed with the
core parsers. Labels (``X-Gmail-Labels``) become metadata; Spam and Trash are
skipped unless asked for.

Read in two passes so memory stays flat: the first reads headers and a digest
of every message, the second loads one thread at a time, and only when its
digest changed since the last ingest.

Mail saved one message a file (``.eml``, as mail clients save and drag out) is read the
same way: the ``.eml`` files of a folder (with its ``.mbox``, when it holds one) are one
mailbox, so a reply saved beside its original joins its thread.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import hashlib
import mailbox
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from ..documents import Document, ParsedDocument
from ..errors import ParseError
from ..names import fold_address
from ..parsers import parse_file, supported
from ..parsers._common import TextBuilder
from ..parsers.html import parse_html
from ..sources import Skipped, SourceItem, document_from_parsed
from .base import BaseConnector

SKIPPED_LABELS = {"spam", "trash"}
_QUOTE_HEADER = re.compile(
    r"^(On .{5,200} wrote:|Le .{5,200} a écrit :|-{2,} ?Original Message ?-{2,})\s*$", re.M | re.S
)
_HEADERS_ONLY = email.parser.BytesHeaderParser(policy=email.policy.default)


_MAIL_HEADERS = ("From", "Date", "Message-ID", "Subject")
# One message of a mailbox: its key (the mbox's own, an .eml file's name), where it is
# (named in failures) and how to read its bytes.
_Message = tuple[str, str, Callable[[], bytes]]


class _NotMail(Exception):
    """A file that holds no mail at all (the reason is the message)."""


@dataclass
class _Entry:
    key: str  # the mailbox's own key (an mbox's number, an .eml file's name)
    message_id: str
    date: datetime
    digest: str
    labels: list[str]
    read: Callable[[], bytes]


@dataclass
class _Thread:
    id: str
    entries: list[_Entry] = field(default_factory=list)


class GmailMbox(BaseConnector):
    name = "gmail"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location).expanduser()
        return path.is_file() and path.suffix.lower() in (".mbox", ".eml")

    def items(self) -> Iterator[SourceItem | Skipped]:
        """The mailbox at ``location``, with the mail files of option ``also`` (an .mbox
        and the .eml files beside it) read as one: threads span the files."""
        paths = [
            Path(p).expanduser().resolve() for p in (self.location, *self.options.get("also", ()))
        ]
        self._complete, self._incomplete = [], set()
        entries: list[tuple[_Entry, str | None, list[str]]] = []
        owners: Counter[str] = Counter()
        problems: list[Skipped] = []
        unread = False  # a file of the mailbox could not be read: keep what is stored
        for path in paths:
            eml = path.suffix.lower() == ".eml"
            try:
                found, trouble = _index(_messages(path), owners)
            except _NotMail as exc:
                unread = True
                yield Skipped(str(path), str(exc), failed=True)
                continue
            except (OSError, mailbox.Error) as exc:
                unread = True
                kind = "message" if eml else "mbox"
                yield Skipped(str(path), f"unreadable {kind}: {exc}", failed=True)
                continue
            if not found:
                unread = True  # a 'From ' line and then no message, a file of no headers
                what = "not an e-mail message (.eml)" if eml else "not an mbox file"
                yield Skipped(
                    str(path),
                    f"{what}: no message in it could be read "
                    f"({trouble[0].reason if trouble else 'no messages'})",
                    failed=True,
                )
                continue
            entries += found
            problems += trouble
        if not entries:
            return
        unique = {entry.message_id: (entry, t, r) for entry, t, r in reversed(entries)}
        threads = _thread(list(unique.values()))  # a message in two files: read once
        fallback = paths[0].parent.name if paths[0].suffix.lower() == ".eml" else paths[0].stem
        owner = owners.most_common(1)[0][0] if owners else fallback
        self.owner = self.options.get("owner") or owner
        scope = f"gmail://{self.owner}"
        self._read(scope)
        if unread:
            self._broken(scope)
        yield from problems
        include_all = bool(self.options.get("include_spam_trash"))
        for thread in threads.values():
            labels = {label.lower() for e in thread.entries for label in e.labels}
            source = f"{scope}/thread/{thread.id}"
            if not include_all and labels & SKIPPED_LABELS:
                yield Skipped(source, "in Spam or Trash (--include-spam-trash to ingest)")
                continue
            yield self._item(thread, source)

    # -- pass 2: one thread at a time --------------------------------------------------------

    def _item(self, thread: _Thread, source: str) -> SourceItem:
        # The owner is in the hash: a mailbox stored before it carried an access list is
        # written again, restricted.
        content_hash = hashlib.sha256(
            ("".join(e.digest for e in thread.entries) + "\x00access:" + self.owner).encode()
        ).hexdigest()
        return SourceItem(
            source=source,
            content_hash=content_hash,
            load=lambda: self._document(thread, source, content_hash),
        )

    def _document(self, thread: _Thread, source: str, content_hash: str) -> Document:
        builder = TextBuilder()
        subject = ""
        participants: list[str] = []
        labels: list[str] = []
        failures: list[tuple[str, str]] = []
        for entry in thread.entries:
            message = email.message_from_bytes(entry.read(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            subject = subject or _header(message, "Subject") or "(no subject)"
            sender = _sender(message)
            if sender not in participants:
                participants.append(sender)
            labels.extend(label for label in entry.labels if label not in labels)
            heading = (subject, f"{sender} {entry.date:%Y-%m-%d %H:%M} <{entry.message_id}>")
            try:
                body = _body(message)
            except (LookupError, UnicodeError, ValueError) as exc:
                failures.append(
                    (f"{source}#<{entry.message_id}>", f"undecodable message body: {exc}")
                )
                body = ""
            builder.add(body, heading)
            for name, payload in _attachments(message):
                text, problem = _attachment_text(name, payload)
                if problem:
                    failures.append(
                        (f"{source}#<{entry.message_id}>/{name}", f"attachment: {problem}")
                    )
                for piece, page in text:
                    builder.add(piece, (*heading, f"attachment {name}"), page=page)
        if not builder.text.strip():
            raise ParseError(
                "; ".join(r for _, r in failures) or "no text in any message of the thread"
            )
        first, last = thread.entries[0], thread.entries[-1]
        metadata: dict[str, Any] = {
            "source_type": "gmail",
            "subject": subject,
            "labels": labels,
            "authors": participants,
            "message_ids": [e.message_id for e in thread.entries],
            "created_at": first.date.isoformat(),
            "updated_at": last.date.isoformat(),
            "principals": [self.owner],
        }
        if thread.id.isdigit():  # Gmail's own thread id opens the thread in the web app
            metadata["url"] = f"https://mail.google.com/mail/u/0/#all/{int(thread.id):x}"
        # A mailbox is its owner's to read: restricted to that address. One whose owner is
        # unknown (no Delivered-To, no `owner` option) is read by no user: fail closed.
        owner = fold_address(self.owner)
        access = (owner,) if "@" in owner and " " not in owner else ()
        parsed = ParsedDocument(builder.text, builder.blocks, subject, access=access)
        document = document_from_parsed(source, parsed, content_hash, metadata)
        document.problems = failures
        return document


# -- pass 1: headers and digests -------------------------------------------------------------


def _messages(path: Path) -> list[_Message]:
    """The messages of an .mbox, or the one of an .eml file; :class:`_NotMail` for a file
    that cannot be mail."""
    eml = path.suffix.lower() == ".eml"
    if path.stat().st_size == 0:
        raise _NotMail(
            "empty file: the .eml file holds no message"
            if eml
            else "empty mailbox: the .mbox file holds no mail"
        )
    if eml:
        return [(path.name, str(path), path.read_bytes)]
    if not _starts_like_mbox(path):
        raise _NotMail(
            "not an mbox file: it must start with a 'From ' line "
            "(Gmail exports mail as .mbox files in Google Takeout)"
        )
    box = mailbox.mbox(path, create=False)
    return [
        (str(key), f"{path}#message-{key}", partial(box.get_bytes, key)) for key in box.iterkeys()
    ]


def _index(
    messages: list[_Message], owners: Counter[str]
) -> tuple[list[tuple[_Entry, str | None, list[str]]], list[Skipped]]:
    """Each message's entry, Gmail thread id and references; its Delivered-To counted in
    ``owners``; the messages that could not be read."""
    entries: list[tuple[_Entry, str | None, list[str]]] = []
    problems: list[Skipped] = []
    for key, where, read in messages:
        try:
            raw = read()
            headers = _HEADERS_ONLY.parsebytes(raw)
            if not headers.keys():  # binary or text that is not mail after a 'From ' line
                raise ValueError("no mail headers")
            if not any(name in headers for name in _MAIL_HEADERS):
                raise ValueError("none of the headers From, Date, Message-ID, Subject")
            message_id = _clean_id(str(headers.get("Message-ID") or "")) or f"key-{key}"
            date = _date(headers.get("Date"))
            thrid = str(headers.get("X-GM-THRID") or "").strip() or None
            references = _ids(str(headers.get("References") or "")) + _ids(
                str(headers.get("In-Reply-To") or "")
            )
            labels = [
                x.strip()
                for x in str(
                    headers.get("X-Gmail-Labels") or headers.get("X-GM-LABELS") or ""
                ).split(",")
                if x.strip()
            ]
            for _, address in getaddresses([str(headers.get("Delivered-To") or "")]):
                owners[fold_address(address)] += 1
        except Exception as exc:  # a malformed message must not stop the mailbox
            problems.append(Skipped(where, f"malformed message: {exc}", failed=True))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        entries.append((_Entry(key, message_id, date, digest, labels, read), thrid, references))
    return entries, problems


def _thread(entries: list[tuple[_Entry, str | None, list[str]]]) -> dict[str, _Thread]:
    """Group by Gmail's thread id, else by the reply chain (union of referenced ids): a
    message with no thread id (an .eml) replying to one with an id joins its thread."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for entry, thrid, references in entries:
        if thrid is None:
            for ref in references:
                parent[find(ref)] = find(entry.message_id)
    gmail = {find(entry.message_id): thrid for entry, thrid, _ in entries if thrid}
    threads: dict[str, _Thread] = {}
    for entry, thrid, _ in sorted(entries, key=lambda e: e[0].date):
        key = (
            thrid
            or gmail.get(find(entry.message_id))
            or hashlib.sha256(find(entry.message_id).encode()).hexdigest()[:16]
        )
        threads.setdefault(key, _Thread(key)).entries.append(entry)
    return threads


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()  # raises LookupError for an unknown charset
    if part.get_content_subtype() == "html":
        soup = BeautifulSoup(content, "html.parser")
        for quote in soup.select(".gmail_quote, blockquote"):
            quote.decompose()
        content = parse_html(str(soup)).text
    return _drop_quoted(content)


def _drop_quoted(text: str) -> str:
    """The new part of a reply: no '> ' lines, nothing after 'On … wrote:'."""
    match = _QUOTE_HEADER.search(text)
    if match:
        text = text[: match.start()]
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attachments(message: EmailMessage) -> Iterator[tuple[str, bytes]]:
    for part in message.iter_attachments():
        name = part.get_filename()
        if not name:
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # a broken transfer encoding
            payload = None
        if isinstance(payload, bytes) and payload:  # decoded: bytes, or None when there are none
            yield Path(name).name, payload


def _attachment_text(name: str, payload: bytes) -> tuple[list[tuple[str, int | None]], str | None]:
    suffix = Path(name).suffix.lower()
    if not supported(Path(name)):
        return [], None  # images and the like: nothing to read
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"attachment{suffix}"
        path.write_bytes(payload)
        try:
            parsed = parse_file(path)
        except ParseError as exc:
            return [], str(exc)
        except Exception as exc:  # a parser bug on one attachment must not lose the thread
            return [], f"{type(exc).__name__}: {exc}"
    return [(parsed.text[b.start : b.end], b.page) for b in parsed.blocks], None


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name) or "").split())
    except Exception:  # undecodable encoded words
        return ""


def _sender(message: EmailMessage) -> str:
    addresses = getaddresses([_header(message, "From")])
    if not addresses:
        return "unknown"
    display, address = addresses[0]
    return display or address or "unknown"


def _date(value: Any) -> datetime:
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _ids(value: str) -> list[str]:
    return [_clean_id(m) for m in re.findall(r"<[^<>]+>", value)]


def _clean_id(value: str) -> str:
    return value.strip().strip("<>").strip()


def _starts_like_mbox(path: Path) -> bool:
    """An mbox begins with a "From " separator line."""
    with path.open("rb") as handle:
        return handle.read(5) == b"From "

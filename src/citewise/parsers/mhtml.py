"""MIME HTML archives (``.mht``, ``.mhtml``): a page a browser saved with its images, as one
``multipart/related`` message whose root part is the HTML. The page is read by the HTML
parser; its title is the page's ``<title>`` (else its first ``<h1>``, else the archive's
``Subject``, which browsers set to the title)."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import guess_decoding
from .html import parse_html

SUFFIXES = (".mht", ".mhtml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.I)


def parse(path: Path) -> ParsedDocument:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("html",))
    if part is None:
        raise ParseError(
            "not a MIME HTML archive (.mht): no text/html part in it "
            "(a browser saves a page as multipart/related with the HTML first)"
        )
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise ParseError("not a MIME HTML archive (.mht): its HTML part is empty")
    subject = " ".join(str(message.get("Subject") or "").split())
    return parse_html(_decode(payload, part.get_content_charset()), subject or path.stem)


def _decode(data: bytes, charset: str | None) -> str:
    """The part's charset, else the page's ``<meta charset>``, else UTF-8, else a guess."""
    meta = _META_CHARSET.search(data[:4096])
    for name in (charset, meta.group(1).decode() if meta else None, "utf-8"):
        if name:
            try:
                return data.decode(name)
            except (LookupError, UnicodeDecodeError):
                continue
    return guess_decoding(data)

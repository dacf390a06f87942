"""HTML through BeautifulSoup: the main content's block elements, headings as path.

Text sitting directly in a container (a ``<div>`` with no ``<p>``, a ``<section>``, the
``<body>``) is read too: each run of it between child blocks is a block of its own, so a
page built of divs reads like one built of paragraphs, and no text is read twice.
"""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString, PreformattedString

from ..documents import ParsedDocument
from ._common import TextBuilder, read_text

SUFFIXES = (".html", ".htm", ".xhtml")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Read whole: their text, nested elements and all, is one block.
_BLOCKS = (*_HEADINGS, "p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption")
# Hold blocks, and maybe text of their own between them.
_CONTAINERS = (
    "html",
    "body",
    "main",
    "article",
    "section",
    "div",
    "center",
    "address",
    "details",
    "summary",
    "dialog",
    "hgroup",
    "figure",
    "fieldset",
    "legend",
    "caption",
    "search",
    "ul",
    "ol",
    "menu",
    "dl",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "hr",
)
_NOISE = (
    "head",
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
)


def parse(path: Path) -> ParsedDocument:
    return parse_html(read_text(path), fallback_title=path.stem)


def parse_html(markup: str, fallback_title: str = "") -> ParsedDocument:
    soup = BeautifulSoup(markup, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_NOISE):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    reader = _Reader()
    reader.read(root)
    first_h1 = next((h for level, h in reader.headings if level == 1), "")
    title = page_title or first_h1 or fallback_title
    return ParsedDocument(text=reader.builder.text, blocks=reader.builder.blocks, title=title)


class _Reader:
    """Walks the tree in document order: blocks whole, containers child by child, and the
    inline content between a container's blocks as blocks of its own."""

    def __init__(self) -> None:
        self.builder = TextBuilder()
        self.headings: list[tuple[int, str]] = []

    def read(self, container: Tag) -> None:
        inline: list[str] = []
        for child in container.children:
            if isinstance(child, Tag):
                if child.name in _BLOCKS:
                    self._inline(inline)
                    self._block(child)
                elif child.name in _CONTAINERS or child.find((*_BLOCKS, *_CONTAINERS)):
                    self._inline(inline)
                    self.read(child)  # an inline element around blocks (<a><div>…) too
                else:
                    inline.append("\n" if child.name == "br" else child.get_text())
            elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
                inline.append(str(child))  # not comments, CDATA, doctypes
        self._inline(inline)

    def _path(self) -> tuple[str, ...]:
        return tuple(h for _, h in self.headings)

    def _inline(self, pieces: list[str]) -> None:
        self.builder.add(" ".join("".join(pieces).split()), self._path())
        pieces.clear()

    def _block(self, element: Tag) -> None:
        text = element.get_text("" if element.name == "pre" else " ", strip=element.name != "pre")
        if element.name in _HEADINGS:
            level = int(element.name[1])
            heading = " ".join(text.split())
            self.headings = [h for h in self.headings if h[0] < level] + [(level, heading)]
            self.builder.add(text, self._path(), kind="heading")
        else:
            kind = "code" if element.name == "pre" else "text"
            self.builder.add(text, self._path(), kind=kind)

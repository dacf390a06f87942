"""HTML through BeautifulSoup: the main content's block elements, headings as path."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup, Tag

from ..documents import ParsedDocument
from ._common import TextBuilder, read_text

SUFFIXES = (".html", ".htm", ".xhtml")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = (*_HEADINGS, "p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption")
_NOISE = ("script", "style", "noscript", "template", "nav", "footer", "header", "aside", "form")


def parse(path: Path) -> ParsedDocument:
    return parse_html(read_text(path), fallback_title=path.stem)


def parse_html(markup: str, fallback_title: str = "") -> ParsedDocument:
    soup = BeautifulSoup(markup, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_NOISE):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    builder = TextBuilder()
    headings: list[tuple[int, str]] = []
    for element in root.find_all(_BLOCKS):
        if _inside_other_block(element, root):
            continue
        text = element.get_text("" if element.name == "pre" else " ", strip=element.name != "pre")
        if element.name in _HEADINGS:
            level = int(element.name[1])
            headings = [h for h in headings if h[0] < level] + [(level, " ".join(text.split()))]
            builder.add(text, tuple(h for _, h in headings), kind="heading")
        else:
            kind = "code" if element.name == "pre" else "text"
            builder.add(text, tuple(h for _, h in headings), kind=kind)
    first_h1 = next((h for level, h in headings if level == 1), "")
    title = page_title or first_h1 or fallback_title
    return ParsedDocument(text=builder.text, blocks=builder.blocks, title=title)


def _inside_other_block(element: Tag, root: Tag) -> bool:
    """True for a <p> inside an <li> and the like: the outer block already has its text."""
    for parent in element.parents:
        if parent is root:
            return False
        if parent.name in _BLOCKS:
            return True
    return False

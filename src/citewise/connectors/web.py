"""Websites: ``citewise ingest https://docs.example.com/``.

Pages come from the site's sitemap when it has one (``/sitemap.xml`` or the
``Sitemap:`` lines of robots.txt, or the URL itself when it names one), else
from a crawl of same-site links, breadth first, within ``max_depth`` links of
the start and ``max_pages`` pages. robots.txt is obeyed (``Disallow`` and
``Crawl-delay``), at most ``concurrency`` requests run at once, and the main
content of each page is extracted with trafilatura, so menus, footers and
cookie banners stay out. A page's id is its canonical URL.

A re-crawl is a snapshot of the site: pages that are gone (404/410) or no longer
linked are deleted — unless the crawl was cut short by ``max_pages`` or by pages
that could not be fetched, in which case nothing is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import trafilatura
from bs4 import BeautifulSoup
from protego import Protego

from ..documents import Block, Document, ParsedDocument
from ..errors import ParseError
from ..parsers import parse_file
from ..parsers.markdown import markdown_blocks
from ..sources import Skipped, SourceItem, document_from_parsed
from .base import BaseConnector

if TYPE_CHECKING:
    from trafilatura.settings import Document as PageMetadata

log = logging.getLogger(__name__)
USER_AGENT = f"citewise/{version('citewise')} (+https://pypi.org/project/citewise/)"
DEFAULT_MAX_PAGES = 200
DEFAULT_MAX_DEPTH = 3
DEFAULT_CONCURRENCY = 2
_SKIPPED_SUFFIXES = re.compile(r"\.(png|jpe?g|gif|svg|webp|ico|css|js|zip|gz|mp[34]|woff2?)$", re.I)


@dataclass
class Page:
    url: str  # as fetched
    status: int
    content_type: str
    body: bytes
    error: str | None = None


class WebConnector(BaseConnector):
    name = "web"

    @classmethod
    def detect(cls, location: str) -> bool:
        return location.startswith(("http://", "https://"))

    def items(self) -> Iterator[SourceItem | Skipped]:
        self._complete, self._incomplete = [], set()
        start = _normal(self.location)
        parts = urlsplit(start)
        self.origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        max_pages = int(self.options.get("max_pages") or DEFAULT_MAX_PAGES)
        depth = self.options.get("max_depth")
        max_depth = int(depth if depth is not None else DEFAULT_MAX_DEPTH)
        concurrency = int(self.options.get("concurrency") or DEFAULT_CONCURRENCY)
        with httpx.Client(
            headers={"User-Agent": USER_AGENT}, timeout=20, follow_redirects=True
        ) as client:
            self.client = client
            robots = self._robots()
            self.delay = robots.crawl_delay(USER_AGENT) or 0.0
            complete = True
            seen_urls: set[str] = set()
            canonical_seen: set[str] = set()
            sitemap = self._sitemap_urls(start, robots)
            frontier = sitemap if sitemap else [start]
            depth, fetched = 0, 0
            with ThreadPoolExecutor(concurrency) as pool:
                while frontier and fetched < max_pages:
                    batch = []
                    for url in frontier:
                        if url in seen_urls:
                            continue
                        seen_urls.add(url)
                        if not robots.can_fetch(url, USER_AGENT):
                            yield Skipped(url, "disallowed by robots.txt")
                            continue
                        batch.append(url)
                    room = max_pages - fetched
                    if len(batch) > room:
                        batch, complete = batch[:room], False
                    next_frontier: list[str] = []
                    for page in pool.map(self._fetch, batch):
                        fetched += 1
                        outcome = self._page_item(page, canonical_seen)
                        if isinstance(outcome, Skipped) and outcome.failed:
                            complete = False
                        if outcome is not None:
                            yield outcome
                        if not sitemap and depth < max_depth and page.error is None:
                            next_frontier.extend(self._links(page))
                    frontier = next_frontier
                    depth += 1
            if frontier and any(u not in seen_urls for u in frontier):
                complete = False  # stopped by max_pages with pages left
        if complete:
            self._read(self.origin)

    # -- fetching -----------------------------------------------------------------------

    def _robots(self) -> Protego:
        try:
            response = self.client.get(self.origin + "/robots.txt")
            text = response.text if response.status_code == 200 else ""
        except httpx.HTTPError:
            text = ""
        return Protego.parse(text)

    def _fetch(self, url: str) -> Page:
        if self.delay:
            time.sleep(self.delay)
        try:
            response = self.client.get(url)
        except httpx.HTTPError as exc:
            return Page(url, 0, "", b"", f"unreachable: {type(exc).__name__}: {exc}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        return Page(str(response.url), response.status_code, content_type, response.content)

    def _sitemap_urls(self, start: str, robots: Protego) -> list[str]:
        candidates = (
            [start] if start.endswith(".xml") else [*robots.sitemaps, self.origin + "/sitemap.xml"]
        )
        for candidate in candidates:
            urls = self._read_sitemap(candidate, depth=0)
            if urls:
                return [u for u in urls if _same_site(u, self.origin)]
        return []

    def _read_sitemap(self, url: str, depth: int) -> list[str]:
        try:
            response = self.client.get(url)
            if response.status_code != 200:
                return []
            root = ElementTree.fromstring(response.content)
        except (httpx.HTTPError, ElementTree.ParseError):
            return []
        locations = [e.text.strip() for e in root.iter() if e.tag.endswith("loc") and e.text]
        if root.tag.endswith("sitemapindex") and depth < 2:
            return [u for child in locations for u in self._read_sitemap(child, depth + 1)]
        return [_normal(u) for u in locations]

    def _links(self, page: Page) -> list[str]:
        if page.status != 200 or "html" not in page.content_type:
            return []
        soup = BeautifulSoup(page.body, "html.parser")
        links = []
        for anchor in soup.find_all("a", href=True):
            href = anchor["href"]  # one string: only class-like attributes are lists
            if "nofollow" in (anchor.get("rel") or []) or not isinstance(href, str):
                continue
            url = _normal(urljoin(page.url, href))
            if _same_site(url, self.origin) and not _SKIPPED_SUFFIXES.search(urlsplit(url).path):
                links.append(url)
        return links

    # -- pages → items ---------------------------------------------------------------------

    def _page_item(self, page: Page, canonical_seen: set[str]) -> SourceItem | Skipped | None:
        if page.error:
            return Skipped(page.url, page.error, failed=True)
        if page.status in (404, 410):
            return Skipped(page.url, f"HTTP {page.status}: gone", gone=True)
        if page.status >= 400:
            return Skipped(page.url, f"HTTP {page.status}", failed=True)
        if "html" in page.content_type:
            return self._html_item(page, canonical_seen)
        if page.content_type == "application/pdf":
            return self._pdf_item(page, canonical_seen)
        return Skipped(page.url, f"unsupported content type {page.content_type or '(none)'}")

    def _html_item(self, page: Page, canonical_seen: set[str]) -> SourceItem | Skipped | None:
        html = page.body.decode("utf-8", errors="replace")
        soup = BeautifulSoup(html, "html.parser")
        link = soup.find("link", rel="canonical")
        href = link.get("href") if link else None
        canonical = (
            _normal(urljoin(page.url, href))
            if isinstance(href, str) and href
            else _normal(page.url)
        )
        if not _same_site(canonical, self.origin):
            canonical = _normal(page.url)
        if canonical in canonical_seen:
            return None  # another URL of a page already read (?utm=…, /index.html)
        canonical_seen.add(canonical)
        text = trafilatura.extract(
            html,
            url=canonical,
            output_format="markdown",
            include_comments=False,
            include_tables=True,
            favor_precision=True,
        )
        if not text or not text.strip():
            return Skipped(canonical, "no main content found on the page", failed=False)
        title_tag = soup.find("title")
        title = (title_tag.get_text(strip=True) if title_tag else "") or canonical
        text = text.strip() + "\n"
        content_hash = hashlib.sha256((title + "\x00" + text).encode()).hexdigest()
        metadata = {
            "source_type": "web",
            "url": canonical,
            "fetched_url": page.url,
            "site": self.origin,
        } | _page_metadata(html, canonical)

        def load() -> Document:
            blocks, _ = markdown_blocks(text)
            titled = [
                Block(b.start, b.end, b.heading_path or (title,), b.page, b.kind) for b in blocks
            ]
            return document_from_parsed(
                canonical, ParsedDocument(text, titled, title), content_hash, metadata
            )

        return SourceItem(source=canonical, content_hash=content_hash, load=load)

    def _pdf_item(self, page: Page, canonical_seen: set[str]) -> SourceItem | None:
        url = _normal(page.url)
        if url in canonical_seen:
            return None
        canonical_seen.add(url)
        content_hash = hashlib.sha256(page.body).hexdigest()
        body = page.body

        def load() -> Document:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / (Path(urlsplit(url).path).name or "page.pdf")
                local.write_bytes(body)
                try:
                    parsed = parse_file(local)
                except ParseError as exc:
                    raise ParseError(f"{url}: {exc}") from exc
            return document_from_parsed(
                url, parsed, content_hash, {"source_type": "web", "url": url, "site": self.origin}
            )

        return SourceItem(source=url, content_hash=content_hash, load=load)


def _page_metadata(html: str, url: str) -> dict[str, object]:
    """Author and publication date when the page declares them (meta tags, JSON-LD)."""
    # trafilatura 2 always gives a Document; 1.x gave None for a page it could not read.
    found: PageMetadata | None = trafilatura.extract_metadata(html, default_url=url)
    if found is None:
        return {}
    extra: dict[str, object] = {}
    if found.author:
        extra["authors"] = [a.strip() for a in found.author.split(";") if a.strip()]
    if found.date:
        extra["created_at"] = found.date
    return extra


def _normal(url: str) -> str:
    """No fragment, no default port, a path of at least '/'."""
    url, _ = urldefrag(url.strip())
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    if (parts.scheme, netloc.rsplit(":", 1)[-1]) in (("http", "80"), ("https", "443")):
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def _same_site(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/")

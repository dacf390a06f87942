"""Crawling a small site served on loopback by the test."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from citewise.connectors import detect_source
from conftest import make_pdf
from exports import stored_documents

BOILERPLATE = (
    "<nav><a href='/'>Home</a> | <a href='/about'>About</a> | Products | Pricing | "
    "Careers | Contact</nav>"
)
FOOTER = "<footer>© 2026 Example Corp · Privacy · Terms · Cookie settings</footer>"


def page(title: str, body: str, canonical: str | None = None) -> str:
    link = f"<link rel='canonical' href='{canonical}'>" if canonical else ""
    return (
        f"<!doctype html><html><head><title>{title}</title>{link}</head><body>{BOILERPLATE}"
        f"<main><article><h1>{title}</h1>{body}</article></main>{FOOTER}</body></html>"
    )


class Site:
    """Pages by path; change them between crawls."""

    def __init__(self, tmp_path: Path) -> None:
        pdf = make_pdf(
            tmp_path / "pricing.pdf",
            ["Pricing sheet.", "The team plan costs 12 euros per seat."],
            title="Pricing",
        )
        self.pages: dict[str, tuple[int, str, bytes]] = {
            "/robots.txt": (200, "text/plain", b"User-agent: *\nDisallow: /private/\n"),
            "/": (
                200,
                "text/html",
                page(
                    "Example docs",
                    (
                        "<p>Welcome to the Example documentation. Start with the <a href='/guide/'>guide</a>, "
                        "read <a href='/guide/?utm_source=home'>the guide again</a>, the "
                        "<a href='/about'>about page</a>, our <a href='/pricing.pdf'>pricing</a>, "
                        "<a href='/private/salaries'>salaries</a>, <a href='/old'>an old page</a>, "
                        "<a href='/broken'>a broken page</a> and <a href='https://elsewhere.example/'>a "
                        "partner</a>.</p><p><a href='/a'>Chain</a></p>"
                    ),
                ).encode(),
            ),
            "/guide/": (
                200,
                "text/html",
                page(
                    "Installation guide",
                    (
                        "<h2>Requirements</h2><p>The agent needs Python 3.10 or newer and 512 MB of memory."
                        "</p><h2>Upgrading</h2><p>Run <code>example upgrade --channel stable</code> to "
                        "upgrade the agent; it restarts itself within thirty seconds.</p>"
                    ),
                    canonical="/guide/",
                ).encode(),
            ),
            "/about": (
                200,
                "text/html",
                page(
                    "About Example",
                    ("<p>Example was founded in Grenoble in 2019 and has forty employees.</p>"),
                ).encode(),
            ),
            "/pricing.pdf": (200, "application/pdf", pdf.read_bytes()),
            "/private/salaries": (
                200,
                "text/html",
                page("Salaries", "<p>Secret salary table.</p>").encode(),
            ),
            "/old": (404, "text/html", b"not found"),
            "/broken": (500, "text/html", b"boom"),
            "/a": (
                200,
                "text/html",
                page("A", "<p>Chain page A links on. <a href='/b'>B</a></p>").encode(),
            ),
            "/b": (
                200,
                "text/html",
                page("B", "<p>Chain page B links on. <a href='/c'>C</a></p>").encode(),
            ),
            "/c": (
                200,
                "text/html",
                page("C", "<p>Chain page C links on. <a href='/d'>D</a></p>").encode(),
            ),
            "/d": (200, "text/html", page("D", "<p>Chain page D is deep down.</p>").encode()),
        }
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                path = self.path if self.path in site.pages else self.path.split("?")[0]
                status, kind, body = site.pages.get(path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def site(tmp_path: Path):
    served = Site(tmp_path)
    yield served
    served.server.shutdown()


@pytest.mark.slow
def test_crawl_extracts_main_content_and_obeys_robots(workspace, site: Site) -> None:
    assert detect_source(site.url + "/") == "web"
    report = workspace.ingest([site.url + "/"], max_depth=2)
    docs = stored_documents(workspace)
    assert set(docs) == {
        f"{site.url}{p}" for p in ("/", "/guide/", "/about", "/pricing.pdf", "/a", "/b")
    }
    assert "/private/salaries" not in site.requests, "robots.txt disallows it"
    assert "/c" not in site.requests, "three links deep is past max_depth 2"
    assert not any("elsewhere" in r for r in site.requests)
    skipped = {s.source: s.reason for s in report.skipped}
    assert skipped[f"{site.url}/private/salaries"] == "disallowed by robots.txt"
    assert skipped[f"{site.url}/old"] == "HTTP 404: gone"
    assert [(f.source, f.reason) for f in report.failed] == [(f"{site.url}/broken", "HTTP 500")]
    guide_text = workspace.store.document_text(docs[f"{site.url}/guide/"].id)
    assert "example upgrade --channel stable" in guide_text
    assert "Cookie settings" not in guide_text and "Careers" not in guide_text

    hit = workspace.search("how do I upgrade the agent", k=1)[0]
    assert hit.source == f"{site.url}/guide/"
    assert hit.heading_path[-1] == "Upgrading"
    pdf = workspace.search("team plan price per seat", k=1)[0]
    assert pdf.source == f"{site.url}/pricing.pdf" and pdf.page == 2
    answer = workspace.ask("When was Example founded?")
    assert "2019" in answer.text
    assert answer.citations[0].hit.source == f"{site.url}/about"


def test_recrawl_updates_and_deletes_only_when_complete(workspace, site: Site) -> None:
    workspace.ingest([site.url + "/"], max_depth=2)
    # With a failing page the crawl is incomplete: nothing may be deleted.
    site.pages["/about"] = (404, "text/html", b"gone")
    partial = workspace.ingest([site.url + "/"], max_depth=2)
    assert partial.deleted == 0 and f"{site.url}/about" in stored_documents(workspace)
    site.pages["/broken"] = (
        200,
        "text/html",
        page("Fixed", "<p>The broken page now works fine.</p>").encode(),
    )
    site.pages["/guide/"] = (
        200,
        "text/html",
        page(
            "Installation guide",
            ("<h2>Upgrading</h2><p>Run <code>example upgrade --channel lts</code> instead.</p>"),
            canonical="/guide/",
        ).encode(),
    )
    report = workspace.ingest([site.url + "/"], max_depth=2)
    assert report.failed == []
    assert (report.added, report.updated, report.deleted) == (1, 1, 1)
    docs = stored_documents(workspace)
    assert f"{site.url}/about" not in docs
    assert "--channel lts" in workspace.store.document_text(docs[f"{site.url}/guide/"].id)


def test_page_limit_and_unreachable_site(workspace, site: Site) -> None:
    limited = workspace.ingest([site.url + "/"], max_pages=3)
    assert limited.added + len(limited.failed) + len(limited.skipped) <= 4
    assert limited.added <= 3 and limited.deleted == 0
    site.server.shutdown()
    site.server.server_close()
    gone = workspace.ingest([site.url + "/"])
    assert len(gone.failed) == 1 and gone.failed[0].source == site.url + "/"
    assert "unreachable" in gone.failed[0].reason
    assert gone.deleted == 0


def test_sitemap_drives_the_crawl(workspace, site: Site) -> None:
    sitemap = (
        f"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        f"<url><loc>{site.url}/about</loc></url><url><loc>{site.url}/d</loc></url></urlset>"
    )
    site.pages["/sitemap.xml"] = (200, "application/xml", sitemap.encode())
    report = workspace.ingest([site.url + "/"])
    assert report.added == 2
    assert set(stored_documents(workspace)) == {f"{site.url}/about", f"{site.url}/d"}

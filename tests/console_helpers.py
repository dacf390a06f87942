"""What the operator console's tests share: an HTTP client holding the keys of a live
server, a Chromium page that records the page's script errors and CSP refusals, signing in
at /admin, and axe-core's serious violations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

from conftest import LiveServer

TIMEOUT_MS = 60_000
AXE = Path(__file__).parent.parent / "src/citewise/web/vendor/axe-core-4.14.1/axe.min.js"


class ConsoleClient:
    """A live server of ``workspace`` and its API keys by name (``call`` uses "admin")."""

    def __init__(self, live: LiveServer, workspace, keys: dict[str, str]) -> None:
        self.live, self.url, self.workspace, self.keys = live, live.url, workspace, keys

    def call(self, method: str, path: str, key: str | None = "admin", **kw: object):
        headers = {} if key is None else {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)


@contextmanager
def browser_page(
    browser, width: int = 1280, height: int = 800, **context: object
) -> Iterator[tuple[object, list[str]]]:
    """A page in a new browser context (closed after), and the list its script errors and
    Content Security Policy refusals are added to."""
    opened = browser.new_context(
        viewport={"width": width, "height": height}, locale="en-US", **context
    )
    page = opened.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page, errors
    finally:
        opened.close()


def checked_page(browser) -> Iterator[object]:
    """For a ``page`` fixture: a page whose test fails on any script error or CSP refusal."""
    with browser_page(browser) as (page, errors):
        yield page
    assert not errors, errors


def sign_in(page, url: str, key: str, view: str) -> None:
    """Sign in to ``url``'s /admin#``view`` with ``key`` (the form is submitted; not waited
    for)."""
    page.goto(f"{url}/admin#{view}")
    page.wait_for_selector("#sign-in:not([hidden])")
    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")


def axe_problems(page, where: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.x A and
    AA rules and axe's best practices), each prefixed with ``where``."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{where}: {v['impact']} {v['id']} ({v['help']}): "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def parse_ms(text: str) -> float:
    """An API timestamp as the milliseconds since the epoch a chart's x values are."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


@contextmanager
def empty_console(browser, root: Path, view: str) -> Iterator[tuple[object, list[str]]]:
    """A page signed in (with an admin key) to /admin#``view`` of a live server over a new,
    empty workspace at ``root``, and the page's errors as ``browser_page`` lists them."""
    from citewise import Workspace
    from citewise.keys import create_key
    from citewise.server import create_app

    workspace = Workspace.open(root)
    key, _ = create_key(workspace.store, "ops", ["*"], ["admin"])
    try:
        with LiveServer(create_app(workspace)) as live, browser_page(browser) as (page, errors):
            sign_in(page, live.url, key, view)
            yield page, errors
    finally:
        workspace.close()


UNLABELLED = """[...document.querySelectorAll('input, select, button')]
     .filter(e => !e.closest('[hidden]'))
     .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                  && !e.textContent.trim())
     .map(e => e.id || e.outerHTML)"""


def unlabelled_controls(page) -> list[str]:
    """The shown inputs, selects and buttons with no label, aria-label or text."""
    return page.evaluate(UNLABELLED)

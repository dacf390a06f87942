"""The web UI in headless Chromium (Debian's; `make test` installs it), against a real server.

Screenshots of every step land in test-artifacts/web/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from citewise import Workspace
from citewise.keys import create_key
from citewise.server import create_app
from conftest import LiveServer

pytestmark = pytest.mark.slow  # real servers (and a browser or the chat model)

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "web"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def site(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(ingested_template / "ws", root / "ws")
    workspace = Workspace.open(root / "ws")
    key, _ = create_key(workspace.store, "web", ["*"], ["ask", "ingest"])
    with LiveServer(create_app(workspace)) as live:
        live.key = key
        live.workspace = workspace
        yield live
    workspace.close()


@pytest.fixture
def page(browser, site: LiveServer):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, site: LiveServer) -> None:
    page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])")
    page.fill("#api-key", site.key)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")


def ask(page, question: str) -> object:
    before = page.locator(".turn").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    turn = page.locator(".turn").nth(before)
    turn.locator(".answer[aria-busy=false]").wait_for()
    return turn


def test_sign_in_keeps_the_key_out_of_the_url(page, site: LiveServer) -> None:
    page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])")
    page.fill("#api-key", "cw-wrong-key")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#sign-in-error:has-text('not accepted')")
    shot(page, "01-sign-in-rejected")
    sign_in(page, site)
    assert "signed in as web" in page.inner_text("#who")
    assert site.key not in page.url
    assert page.evaluate("sessionStorage.getItem('citewise.key')") == site.key
    assert page.evaluate("localStorage.length") == 0
    boxes = page.locator("#collection-list input")
    assert boxes.count() == 1 and boxes.first.is_checked()
    shot(page, "02-signed-in")


def test_search_as_you_type_shows_what_the_model_will_see(page, site: LiveServer) -> None:
    sign_in(page, site)
    page.type("#question", "emergency assembly point", delay=20)
    first = page.locator("#live-results li").first
    first.filter(has_text="Safety procedures").wait_for()
    shot(page, "03-search-as-you-type")
    page.fill("#question", "")
    page.type("#question", "refunds to the original card", delay=20)
    page.locator("#live-results li").first.filter(has_text="Billing manual").wait_for()
    assert "Safety procedures" not in page.locator("#live-results li").first.inner_text()


def test_ask_click_a_citation_and_see_the_span(page, site: LiveServer) -> None:
    sign_in(page, site)
    turn = ask(page, "How do I rotate the API keys?")
    assert "keyctl rotate" in turn.locator(".answer").inner_text()
    markers = turn.locator("button.marker")
    assert markers.count() >= 1
    assert "Deployment guide" in turn.locator(".citations").inner_text()
    shot(page, "04-answer")
    markers.first.click()
    page.wait_for_selector("#source:not([hidden]) mark")
    assert "keyctl rotate --all" in page.inner_text("#source mark")
    assert "Rotating API keys" in page.inner_text("#source-location")
    shot(page, "05-citation-highlighted")
    page.keyboard.press("Escape")
    page.wait_for_selector("#source", state="hidden")

    pdf_turn = ask(page, "Where is the emergency assembly point?")
    pdf_turn.locator("button.marker").first.click()
    page.wait_for_selector("#source:not([hidden]) mark")
    assert "page 2" in page.inner_text("#source-location")
    assert "north parking lot" in page.inner_text("#source mark")
    shot(page, "06-pdf-page-citation")


def test_follow_up_copy_and_feedback(page, site: LiveServer) -> None:
    sign_in(page, site)
    bodies = []
    page.on(
        "request",
        lambda r: bodies.append(r.post_data) if r.url.endswith("/chat/completions") else None,
    )
    first = ask(page, "How are refunds issued?")
    second = ask(page, "How long does that take?")
    sent = json.loads(bodies[-1])
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == "How are refunds issued?"
    assert "14" in second.locator(".answer").inner_text()
    shot(page, "07-follow-up")

    first.locator("button.copy").click()
    first.locator(".status:has-text('Copied')").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "Sources:" in copied and "Billing manual" in copied

    first.locator("button.thumb.up").click()
    first.locator(".status:has-text('Thanks')").wait_for()
    assert first.locator("button.thumb.up").get_attribute("aria-pressed") == "true"
    stored = site.workspace.store.feedback()
    assert stored[-1]["rating"] == 1
    assert stored[-1]["question"] == "How are refunds issued?"
    assert stored[-1]["key_name"] == "web"
    assert stored[-1]["citations"][0]["title"] == "Billing manual"


def test_upload_by_drop_and_picker_then_ask_about_it(
    page, site: LiveServer, tmp_path: Path
) -> None:
    sign_in(page, site)
    page.fill("#upload-collection", "uploads")
    lighthouse = tmp_path / "lighthouse.md"
    lighthouse.write_text("# Lighthouse\n\nThe lighthouse lamp is serviced every March by Ada.\n")
    page.set_input_files("#file-input", str(lighthouse))
    page.wait_for_selector("#upload-files li[data-status=added]")
    # Drag and drop: a DataTransfer holding a good file and a corrupt PDF.
    page.evaluate(
        """() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["# Pier\\n\\nThe pier closes at 21:00 in winter.\\n"], "pier.md"));
        transfer.items.add(new File(["%PDF-1.4 broken"], "broken.pdf"));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }"""
    )
    page.wait_for_selector("#upload-files li[data-status=failed]")
    page.wait_for_selector("#upload-files li:has-text('pier.md: added')")
    failed = page.inner_text("#upload-files li[data-status=failed]")
    assert "broken.pdf" in failed and "PDF" in failed
    shot(page, "08-upload")
    page.locator("#collection-list label:has-text('uploads')").wait_for()
    turn = ask(page, "When is the lighthouse lamp serviced?")
    assert "March" in turn.locator(".answer").inner_text()
    assert "Lighthouse" in turn.locator(".citations").inner_text()
    shot(page, "09-answer-from-upload")

    # A transcript: its citation shows the speaker and the time range.
    from test_transcripts import SRT

    call = tmp_path / "planning.srt"
    call.write_text(SRT, encoding="utf-8")
    page.set_input_files("#file-input", str(call))
    page.wait_for_selector("#upload-files li:has-text('planning.srt: added')")
    page.click("#new-conversation")  # not a follow-up to the lighthouse question
    turn = ask(page, "What is the budget for the Lyon opening?")
    assert "Bob 00:01:10-00:01:20" in turn.locator(".citations").inner_text()
    turn.locator("button.marker").first.click()
    page.wait_for_selector("#source:not([hidden]) mark")
    assert "420 thousand euros" in page.inner_text("#source mark")
    assert "Bob 00:01:10-00:01:20" in page.inner_text("#source-location")
    shot(page, "10-transcript-citation")


def test_phone_width_and_keyboard(browser, site: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, site)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.focus("#question")
    page.keyboard.type("How do I rotate the API keys?")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "ask-button"
    page.keyboard.press("Enter")
    page.locator(".turn .answer[aria-busy=false]").wait_for()
    assert "keyctl rotate" in page.inner_text(".turn .answer")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "11-phone")
    context.close()

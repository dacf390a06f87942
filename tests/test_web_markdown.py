"""Answers in the web UI rendered as Markdown, safely (issue 31, item 1), in headless
Chromium against a real server whose chat model is the OpenAI STAND-IN, so the answer is
exactly the text scripted here.

The hostile corpus: documents whose titles, file names and text carry script, event
handler, ``javascript:`` and CSS payloads, and an answer that repeats them in Markdown.
Nothing may run (``window.__pwned`` stays undefined), nothing may be hidden, and the page
must cause no CSP violation and no console error.

Screenshots land in test-artifacts/web/.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from citewise import Workspace
from conftest import LiveServer, served_over_standin
from standins import Script, stand_in
from test_web import ARTIFACTS, TIMEOUT_MS, ask

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "src" / "citewise" / "web"
QUESTION = "How do I rotate the API keys?"
PWN = "window.__pwned=1"
MARKDOWN_ANSWER = f"""Keys are rotated with **keyctl** [1]:

- run `keyctl rotate --all` [1]
- restart the *workers*

```bash
keyctl rotate --all  # not a marker: [1]
```

| Step | Command |
|:-----|--------:|
| 1 | `keyctl rotate` |

See [the guide](https://example.com/guide) and <{"https://example.com/auto"}>.

[1]: https://example.com/footnote"""
HOSTILE_ANSWER = f"""Fine print [1] and [2].

<script>{PWN}</script>
<img src=x onerror="{PWN}">
[click me](javascript:{PWN})
[Click Me Too](JaVaScRiPt:{PWN})
<a href="javascript:{PWN}">raw link</a>
<style>body{{display:none}}</style>
<svg onload="{PWN}"></svg>
<details open ontoggle="{PWN}">x</details>
![picture](javascript:{PWN})
![tracker](https://example.com/pixel.png)
[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[vb](vbscript:msgbox)
[relative](/v1/collections)
<iframe src="javascript:{PWN}"></iframe>

`<script>{PWN}</script>` in code, and a block:

```html
<script>{PWN}</script><img src=x onerror="{PWN}">
```

[a safe link](https://example.com/safe)"""
# Payloads for the documents: their text, titles (headings) and file names.
HOSTILE_TEXT = f"""# <script>{PWN}</script> Pier **notice** <img src=x onerror="{PWN}">

## **Winter** <svg onload="{PWN}"> hours

The pier closes at 21:00 in winter. <img src=x onerror="{PWN}">
[click](javascript:{PWN}) <a href="javascript:{PWN}">here</a>
<style>body{{display:none}}</style> <script>{PWN}</script>
"""
HOSTILE_NAME = f'pier <img src=x onerror="{PWN}">.md'
UPLOAD_NAME = f"lamp <svg onload={PWN}> <style>body{{display:none}}<style>.txt"
UPLOAD_TEXT = f"The lighthouse lamp <script>{PWN}</script> is serviced every March.\n"
# Errors and CSP violations, collected from the page's first script on.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""
# What a rendered answer must not contain.
INERT = """(root) => {
  const bad = [];
  for (const el of root.querySelectorAll("*")) {
    if (["SCRIPT", "STYLE", "IMG", "SVG", "IFRAME", "DETAILS", "OBJECT", "EMBED", "FORM", "INPUT"]
        .includes(el.tagName.toUpperCase())) bad.push(el.tagName);
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on") || attr.name === "style" || attr.name === "src") {
        bad.push(`${el.tagName}[${attr.name}]`);
      }
      if (/^\\s*(javascript|data|vbscript):/i.test(attr.value)) bad.push(`${el.tagName}[${attr.name}=${attr.value}]`);
    }
  }
  return bad;
}"""


@pytest.fixture(scope="module")
def standin_server() -> Iterator[tuple[str, Script]]:
    with stand_in("openai") as served:
        yield served


@pytest.fixture
def standin(standin_server: tuple[str, Script]) -> Script:
    return standin_server[1]


@pytest.fixture(scope="module")
def site(
    ingested_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    standin_server: tuple[str, Script],
) -> Iterator[LiveServer]:
    """The test corpus plus a hostile document, served (no auth) over the stand-in."""
    template = tmp_path_factory.mktemp("hostile-template")
    shutil.copytree(ingested_template / "ws", template / "ws")
    docs = template / "docs"
    docs.mkdir()
    (docs / HOSTILE_NAME).write_text(HOSTILE_TEXT, encoding="utf-8")
    with Workspace.open(template / "ws") as workspace:
        report = workspace.ingest([docs])
        assert report.added == 1, report
    root = tmp_path_factory.mktemp("web-markdown")
    url = standin_server[0]
    with served_over_standin(template, root, url, 'answer_check = "off"') as live:
        yield live


@pytest.fixture
def page(browser, site: LiveServer, standin: Script):
    standin.reply = Script.reply
    standin.chunk_chars = 0
    standin.delay_per_chunk = 0.0
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Nothing leaves the machine: a link the test clicks opens a tab that goes nowhere.
    context.route(
        lambda url: not url.startswith(site.url), lambda route: route.abort("blockedbyclient")
    )
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda m: (
            page.errors.append(f"console.{m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.goto(site.url + "/")
    page.wait_for_selector("#app:not([hidden])")  # no auth: no sign-in step
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_clean(page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__csp") == []
    assert page.errors == []
    assert page.evaluate("getComputedStyle(document.body).display") != "none"
    assert page.locator("#app").is_visible()


@pytest.mark.slow  # a real server and a browser
def test_an_answer_renders_as_markdown_with_live_markers(page, standin: Script) -> None:
    standin.reply = MARKDOWN_ANSWER
    standin.chunk_chars = 4
    standin.delay_per_chunk = 0.004  # many deltas, rendered as they arrive
    # While the answer streams: is the first paragraph's node the one kept to the end?
    page.evaluate(
        """() => {
        window.__partial = [];
        new MutationObserver(() => {
          const answer = document.querySelector(".turn .answer[aria-busy=true]");
          if (!answer) return;
          window.__partial.push(answer.innerHTML);
          if (answer.querySelector("ul") && !window.__firstBlock) {
            window.__firstBlock = answer.firstElementChild;
          }
        }).observe(document.getElementById("turns"), {subtree: true, childList: true, characterData: true});
    }"""
    )
    turn = ask(page, QUESTION)
    answer = turn.locator(".answer")
    assert answer.locator("strong").first.inner_text() == "keyctl"
    assert answer.locator("em").inner_text() == "workers"
    assert answer.locator("ul > li").count() == 2
    assert answer.locator("li code").first.inner_text() == "keyctl rotate --all"
    block = answer.locator("pre > code")
    assert "keyctl rotate --all" in block.inner_text()
    assert "hljs" in (block.get_attribute("class") or "")
    assert block.locator("span.hljs-comment").count() == 1  # highlighted as bash
    assert answer.locator("table th").count() == 2
    assert answer.locator("table td").nth(1).get_attribute("class") == "align-right"
    link = answer.locator("a", has_text="the guide")
    assert link.get_attribute("href") == "https://example.com/guide"
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert answer.locator("a[href='https://example.com/auto']").count() == 1
    # [1] in text is a marker; the one in the code block is code. A footnote line
    # "[1]: URL" is text with a marker, not a reference definition that would turn every
    # [1] into a link.
    markers = answer.locator("button.marker")
    assert markers.count() == 3
    assert answer.locator("a[href='https://example.com/footnote']").count() == 1
    assert answer.locator("a button, a .marker").count() == 0
    assert answer.locator("pre button, code button").count() == 0
    assert "not a marker: [1]" in block.inner_text()
    shot(page, "12-markdown-answer")

    # It streamed: partial Markdown was on the page before the end, and the first block,
    # once complete, stayed the same node (no flicker) to the end.
    partial = page.evaluate("window.__partial")
    final = answer.inner_html()
    assert any("<strong>" in html and "<table" not in html for html in partial)
    assert page.evaluate(
        "window.__firstBlock === document.querySelector('.turn .answer').firstElementChild"
    )

    markers.first.click()
    page.wait_for_selector("#source:not([hidden]) mark")
    assert "keyctl rotate --all" in page.inner_text("#source mark")
    page.keyboard.press("Escape")
    page.wait_for_selector("#source", state="hidden")

    # The same answer in one piece renders to the same DOM.
    standin.chunk_chars = len(MARKDOWN_ANSWER)
    standin.delay_per_chunk = 0.0
    page.click("#new-conversation")
    again = ask(page, QUESTION)
    assert again.locator(".answer").inner_html() == final
    # At phone width the code block and the table scroll inside the answer, not the page.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_clean(page)


@pytest.mark.slow  # a real server and a browser
def test_markdown_emphasis_is_stripped_from_titles_and_locations(page) -> None:
    cases = {
        "Guide > **Setup** > *Keys*": "Guide > Setup > Keys",
        "Notes > ~~Old~~ `config.toml`": "Notes > Old config.toml",
        "snake_case_name.md": "snake_case_name.md",
        "2 * 3 * 4": "2 * 3 * 4",
        "**": "**",
    }
    for raw, shown in cases.items():
        assert page.evaluate("(text) => plain(text)", raw) == shown


@pytest.mark.slow  # a real server and a browser
def test_the_hostile_corpus_renders_inert(page, site: LiveServer, standin: Script) -> None:
    # An upload whose file name and text carry payloads: its row shows the name as text.
    page.evaluate(
        """([name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }""",
        [UPLOAD_NAME, UPLOAD_TEXT],
    )
    page.wait_for_selector("#upload-files li[data-status]")
    row = page.inner_text("#upload-files li")
    assert UPLOAD_NAME in row, row
    assert_clean(page)

    # Search as you type: titles, locations and passages of the hostile document as text.
    page.type("#question", "pier closes winter", delay=10)
    hit = page.locator("#live-results li").filter(has_text="Pier").first
    hit.wait_for()
    assert f"<script>{PWN}</script>" in hit.inner_text()
    assert page.locator("#live-results").evaluate(INERT) == []
    page.fill("#question", "")

    standin.reply = HOSTILE_ANSWER
    turn = ask(page, "When does the pier close in winter?")
    answer = turn.locator(".answer")
    assert answer.evaluate(INERT) == []
    assert answer.locator("a").count() >= 1
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    # Only absolute http(s) links are links (an image is a link to it, not fetched); a
    # javascript:, data:, vbscript: or relative link stays as its Markdown text.
    assert hrefs == ["https://example.com/pixel.png", "https://example.com/safe"]
    assert "[click me](javascript:" in answer.inner_text()
    assert "[relative](/v1/collections)" in answer.inner_text()
    text = answer.inner_text()
    assert f"<script>{PWN}</script>" in text  # shown, as text
    assert "<style>body{display:none}</style>" in text
    assert answer.locator("code").count() >= 2
    shot(page, "13-hostile-answer")

    # Click every link (each opens a new tab without an opener), then every marker.
    for n in range(answer.locator("a[href]").count()):
        with page.context.expect_page() as opened:
            answer.locator("a[href]").nth(n).click()
        opened.value.close()
    assert turn.locator(".citations").evaluate(INERT) == []
    for n in range(answer.locator("button.marker").count()):
        answer.locator("button.marker").nth(n).click()
        page.wait_for_selector("#source:not([hidden]) mark")
    assert page.locator("#source").evaluate(INERT) == []
    # Source 1 is the hostile document: its title, location, file name and text, as text.
    hostile = answer.locator("button.marker", has_text="[1]")
    assert "Pier notice" in (hostile.get_attribute("aria-label") or "")
    hostile.click()
    page.wait_for_selector("#source:not([hidden]) mark")
    assert "Pier notice" in page.inner_text("#source-title")
    location = page.inner_text("#source-location")
    assert "Winter hours" in location and "**" not in location
    assert HOSTILE_NAME in location  # the file name, as text
    assert f"<script>{PWN}</script>" in page.inner_text("#source-text")
    assert page.locator("#source").evaluate(INERT) == []
    shot(page, "14-hostile-source")
    page.wait_for_timeout(300)  # an onerror or onload would have fired by now
    assert_clean(page)


def test_the_vendored_libraries_are_the_pinned_files_with_their_licences() -> None:
    """What packages.json pins is on disk with a licence, README.md is the one
    scripts/web_vendor.py writes from it, and the page loads only files that exist."""
    spec = importlib.util.spec_from_file_location("web_vendor", ROOT / "scripts" / "web_vendor.py")
    assert spec is not None and spec.loader is not None
    web_vendor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web_vendor)
    packages = json.loads((WEB / "vendor" / "packages.json").read_text(encoding="utf-8"))
    for package in packages["packages"]:
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"]), package
        targets = list(package["files"].values())
        assert any(t.upper().startswith("LICENSE") for t in targets), package["name"]
        for target in targets:
            assert (WEB / "vendor" / package["dir"] / target).is_file(), target
    readme = (WEB / "vendor" / "README.md").read_text(encoding="utf-8")
    assert readme == web_vendor.readme(packages["packages"])
    page = (WEB / "index.html").read_text(encoding="utf-8")
    loaded = re.findall(r'(?:src|href)="/static/(vendor/[^"]+)"', page)
    assert len(loaded) == 4
    for path in loaded:
        assert (WEB / path).is_file(), path
    # The console loads uPlot (its script and its stylesheet) for its charts, and no more.
    admin = (WEB / "admin.html").read_text(encoding="utf-8")
    loaded = re.findall(r'(?:src|href)="/static/(vendor/[^"]+)"', admin)
    assert sorted(loaded) == [
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        "vendor/uplot-1.6.32/uPlot.min.css",
    ]
    for path in loaded:
        assert (WEB / path).is_file(), path

"""Take the screenshots of the web UI and the operator console in docs/images/ from a real run.

    python docs/screenshots.py            # writes docs/images/*.png (1280x800)
    python docs/screenshots.py --out DIR  # somewhere else

A server (the same app as ``citewise serve``) runs on loopback over a temporary workspace
with the tests' seven-format folder ingested (tests/conftest.py). Its model is the OpenAI
STAND-IN of the tests (tests/standins.py: the Chat Completions wire format on loopback, with
known usage and a price), because no real API can be called here; an alias's first target is
a second stand-in that answers every call with a 500, so the Models view shows a failing
target and its open circuit breaker. Everything else is real: keys are created, questions
asked through the API by several keys (one through an assistant with the response cache, one
retried over a 500), a budget set and answers rated through ``POST /v1/feedback``; then
Debian's Chromium (through Playwright, as the browser tests) signs in and saves each view.
Each PNG is kept under 200 KB (reduced to a 256-colour palette when it is larger).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from io import BytesIO
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
LIMIT = 200_000  # bytes per PNG
QUESTIONS = [
    "How do I rotate the API keys?",
    "How long do refunds take?",
    "When are the fire drills?",
    "Where is the emergency assembly point?",
]
FEEDBACK = [
    (QUESTIONS[0], 1, "Clear, and the source is right"),
    (QUESTIONS[1], 1, None),
    (QUESTIONS[2], -1, "Cites the wrong page"),
]
# (view, what shows it is loaded, file)
VIEWS = [
    ("usage", "#usage-groups tbody tr", "console-usage.png"),
    ("keys", "#keys-table tbody tr", "console-keys.png"),
    ("models", ".chain", "console-models.png"),
    ("quality", "#feedback-table tbody tr", "console-quality.png"),
    ("budgets", ".budget", "console-budgets.png"),
    ("health", "#health-components tbody tr", "console-health.png"),
]


def config(url: str, flaky_url: str) -> str:
    standin, flaky = "openai:standin-model", "openai:flaky-model"
    return "\n".join(
        [
            'provider = "openai"',
            'model = "standin-model"',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            "[assistants.support]",
            'response_cache = "exact"',
            "[assistants.resilient]",
            'model = "resilient"',
            "[models.resilient]",
            f'chain = ["{flaky}", "{standin}"]',
            "breaker_failures = 2",
            "breaker_cooldown = 3600",
            f'[targets."{standin}"]',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            "input_price = 0.15",
            "output_price = 0.6",
            f'[targets."{flaky}"]',
            f'base_url = "{flaky_url}"',
            'api_key_env = "STANDIN_KEY"',
            "max_retries = 0",
            "input_price = 0.15",
            "output_price = 0.6",
            "",
        ]
    )


class Server:
    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url, self.keys = url, keys

    def call(self, method: str, path: str, key: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)
        response.raise_for_status()
        return response

    def chat(self, key: str, question: str, model: str = "citewise") -> dict:
        payload = {"model": model, "messages": [{"role": "user", "content": question}]}
        return self.call("POST", "/v1/chat/completions", key, json=payload).json()


def make_data(server: Server, script) -> None:
    for n, question in enumerate(QUESTIONS):
        server.chat("alice", question)
        server.chat("support-bot", question, "support")
        if n < 2:
            server.chat("support-bot", question, "support")  # a cache hit
    script.behaviours.append("500")  # a failed attempt, then its retry
    server.chat("bob", QUESTIONS[3])
    for _ in range(3):  # two 500s open the flaky target's breaker; the third skips it
        server.chat("bob", QUESTIONS[0], "resilient")
    for question, rating, comment in FEEDBACK:
        answer = server.chat("alice", question)
        body = {
            "rating": rating,
            "question": question,
            "answer": answer["choices"][0]["message"]["content"],
            "citations": answer["citations"],
            "model": "citewise",
            "comment": comment,
        }
        server.call("POST", "/v1/feedback", "alice", json=body)


def save(png: bytes, path: Path) -> None:
    """The PNG as it is, or as a 256-colour palette when that is needed to stay small."""
    if len(png) > LIMIT:
        from PIL import Image

        image = Image.open(BytesIO(png)).convert("RGB")
        out = BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        png = out.getvalue()
    if len(png) > LIMIT:
        raise SystemExit(f"{path.name}: {len(png)} bytes, over {LIMIT}")
    path.write_bytes(png)
    print(
        f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
        f"({len(png) // 1000} KB)"
    )


def shoot(server: Server, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url + "/admin#usage")
        page.fill("#api-key", server.keys["admin"])
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#views-nav:not([hidden])")
        for view, ready, name in VIEWS:
            page.click(f"#views-nav a[data-view={view}]")
            page.wait_for_selector(f"#view-{view} {ready}")
            if view == "usage":
                page.select_option("#usage-range", "24h")
                page.wait_for_selector("#usage-chart svg rect")
            if view == "models":
                target = ".chain[data-chain='resilient'] tr[data-target='openai:flaky-model']"
                page.click(f"{target} button")
                page.wait_for_selector(".chain[data-chain='resilient'] .test-result[data-ok]")
                chain = page.locator(".chain[data-chain='resilient']")
                chain.evaluate("card => window.scrollTo(0, card.offsetTop - 12)")
            page.mouse.move(0, 0)
            save(page.screenshot(), out / name)
        # The chat page (signed in by the console: one key per tab), with an answer.
        page.goto(server.url + "/")
        page.wait_for_selector("#app:not([hidden])")
        page.fill("#question", QUESTIONS[0])
        page.press("#question", "Enter")
        page.locator(".turn .answer[aria-busy=false]").wait_for()
        page.mouse.move(0, 0)
        save(page.screenshot(), out / "chat.png")
        context.close()
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit("Chromium is missing: apt-get install -y chromium")
    sys.path.insert(0, str(TESTS))
    from citewise import Workspace
    from citewise.keys import create_key
    from citewise.ledger import BudgetRule
    from citewise.server import create_app
    from conftest import LiveServer, write_corpus
    from standins import Script, stand_in

    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["STANDIN_KEY"] = "sk-standin"
    scratch = Path(tempfile.mkdtemp(prefix="citewise-screenshots-"))
    try:
        corpus = write_corpus(scratch / "docs")
        with (
            stand_in("openai", Script(usage=(1200, 180))) as (url, script),
            stand_in("openai", Script(default="500")) as (flaky_url, _),
        ):
            (scratch / "ws").mkdir()
            (scratch / "ws" / "citewise.toml").write_text(config(url, flaky_url), "utf-8")
            with Workspace.open(scratch / "ws") as workspace:
                workspace.ingest([corpus])
                keys = {
                    name: create_key(workspace.store, name, ["*"], scopes, rpm)[0]
                    for name, scopes, rpm in [
                        ("admin", ["admin"], None),
                        ("alice", ["ask"], None),
                        ("bob", ["ask", "ingest"], None),
                        ("support-bot", ["ask"], 60),
                    ]
                }
                workspace.ledger.set_budget(BudgetRule("key", "alice", "usd", "day", 0.02))
                workspace.ledger.set_budget(
                    BudgetRule("assistant", "support", "tokens", "month", 100_000)
                )
                with LiveServer(create_app(workspace)) as live:
                    server = Server(live.url, keys)
                    make_data(server, script)
                    shoot(server, args.out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

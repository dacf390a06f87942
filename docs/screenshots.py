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
Files are uploaded to a second collection in an ingest job with a corrupt PDF (its failure
and the retry of it fill the Jobs view), a crawled page is added beside them (a connector's
kind of source), and a retrieval run (three times, with more modes each time) and an answers
run are evaluated and stored (the Quality view's runs, trend and drill-down).
Debian's Chromium (through Playwright, as the browser tests) signs in and saves each view.
Each PNG is kept under 200 KB (reduced to a 256-colour palette when it is larger).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
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
    ("collections", ".collection", "console-collections.png"),
    ("jobs", ".job", "console-jobs.png"),
    ("quality", "#feedback-table tbody tr", "console-quality.png"),
    ("budgets", ".budget", "console-budgets.png"),
    ("health", "#health-components tbody tr", "console-health.png"),
]
HANDBOOK = "handbook"  # the collection the uploads go to
UPLOADS = {
    "greenhouse.md": b"# Greenhouse\n\nThe greenhouse fans start at 31 degrees.\n\n"
    b"## Winter\n\nIn winter the heaters keep the greenhouse above 8 degrees.\n",
    "orchard.txt": b"The orchard is watered every Tuesday at dawn.\n",
    "beehives.md": b"# Beehives\n\nThe beehives are inspected every second Friday.\n",
    "scan-2026-03.pdf": b"%PDF-1.4\nthis is not really a pdf\n%%EOF",  # fails: corrupt
}
CRAWLED = (
    "https://intranet.example/policies/ladders",
    "Ladder policy",
    "Ladders are inspected before each use and tagged red when they fail.",
)
# A small BEIR dataset (corpus, queries, judgements) for the stored retrieval runs.
BEIR_CORPUS = [
    ("greenhouse", "Greenhouse", "The greenhouse fans start at 31 degrees; heaters run in winter."),
    ("orchard", "Orchard", "The orchard is watered every Tuesday at dawn."),
    ("beehives", "Beehives", "The beehives are inspected every second Friday in summer."),
    ("compost", "Compost", "Compost is turned weekly and kept moist but not wet."),
    ("tools", "Tool shed", "Tools are cleaned and oiled before they go back in the shed."),
]
BEIR_QUERIES = [
    ("q1", "when do the greenhouse fans start", ["greenhouse"]),
    ("q2", "watering day for the orchard", ["orchard"]),
    ("q3", "how often are the bees checked", ["beehives"]),
    ("q4", "turning the compost heap", ["compost"]),
    ("q5", "care of garden tools", ["tools"]),
]
ANSWER_CASES = [
    {"question": QUESTIONS[0], "answers": ["keyctl rotate --all"], "sources": ["guide.md"]},
    {"question": QUESTIONS[2], "answers": ["every quarter"], "sources": ["safety.pdf"]},
    {"question": "What is the melting point of tungsten?", "answerable": False},
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

    def wait(self, job_id: str) -> dict:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = self.call("GET", f"/v1/jobs/{job_id}", "admin").json()
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.1)
        raise SystemExit(f"ingest job {job_id} never ended")

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


def make_console_data(server: Server) -> dict:
    """An upload job to a second collection with a corrupt PDF, the retry of its failed
    file (failing again, with its reason), and a rated answer's citation to open in the
    document viewer: the Collections and Jobs views' data."""
    files = [("files", (name, data)) for name, data in UPLOADS.items()]
    job = server.call("POST", f"/v1/collections/{HANDBOOK}/documents", "bob", files=files).json()
    server.wait(job["id"])
    retry = server.call("POST", f"/v1/admin/jobs/{job['id']}/retry", "admin").json()
    server.wait(retry["id"])
    feedback = server.call("GET", "/v1/admin/feedback", "admin").json()["data"]
    cited = next(c for f in feedback if f["rating"] > 0 for c in f["citations"])
    return cited


def write_evaluations(workspace, scratch: Path) -> None:
    """Stored evaluation runs, as ``citewise eval retrieval`` and ``eval answers`` keep
    them: retrieval on a small BEIR set (BM25 alone, then with dense, then every mode) and
    the answers of the stand-in model to three questions (one not answerable)."""
    # Relative paths: a run's dataset is shown as it was given (not a temporary folder).
    here = Path.cwd()
    os.chdir(scratch)
    try:
        _evaluate(workspace)
    finally:
        os.chdir(here)


def _evaluate(workspace) -> None:
    from citewise.answer_eval import evaluate_answers
    from citewise.evaluation import evaluate_retrieval

    beir = Path("garden")
    (beir / "qrels").mkdir(parents=True)
    corpus = [{"_id": i, "title": t, "text": x} for i, t, x in BEIR_CORPUS]
    (beir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    queries = [{"_id": q, "text": text} for q, text, _ in BEIR_QUERIES]
    (beir / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    qrels = "".join(f"{q}\t{d}\t1\n" for q, _, docs in BEIR_QUERIES for d in docs)
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    for modes in (("bm25",), ("bm25", "dense"), ("bm25", "dense", "hybrid")):
        evaluate_retrieval(workspace, beir, modes=modes)
        time.sleep(1.5)  # runs apart in time: points apart on the trend
    cases = Path("questions.jsonl")
    cases.write_text("".join(json.dumps(c) + "\n" for c in ANSWER_CASES))
    evaluate_answers(workspace, cases)


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


def shoot(server: Server, out: Path, cited: dict) -> None:
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
                # The chart redrawn per hour (uPlot's canvas; its hidden table's head).
                page.wait_for_selector("#usage-chart-table th:text-is('Hour')", state="attached")
                page.wait_for_selector("#usage-chart canvas")
            if view == "models":
                target = ".chain[data-chain='resilient'] tr[data-target='openai:flaky-model']"
                page.click(f"{target} button")
                page.wait_for_selector(".chain[data-chain='resilient'] .test-result[data-ok]")
                chain = page.locator(".chain[data-chain='resilient']")
                chain.evaluate("card => window.scrollTo(0, card.offsetTop - 12)")
            if view == "quality":
                page.wait_for_selector("#eval-trend-table tbody tr", state="attached")
                page.wait_for_selector("#eval-trend canvas")
            if view == "collections":  # the uploads' collection: a failure, two kinds
                card = page.locator(f".collection[data-collection='{HANDBOOK}']")
                card.evaluate("card => window.scrollTo(0, card.offsetTop - 12)")
            page.mouse.move(0, 0)
            save(page.screenshot(), out / name)
            if view == "collections":
                shoot_document(page, cited, out)
            if view == "quality":
                shoot_eval_runs(page, out)
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


def shoot_document(page, cited: dict, out: Path) -> None:
    """The document viewer on a document a rated answer cited: its chunks, each with the
    rated answers that cited it."""
    collection = cited["collection"]
    page.get_by_role("button", name=f"Show documents of {collection}").click()
    row = page.locator(f"#documents-table tbody tr[data-id='{cited['document_id']}']")
    row.get_by_role("button", name="View").click()
    page.wait_for_selector(f"#viewer-chunks li[data-chunk-id='{cited['chunk_id']}'] .cited-by")
    page.locator("#document-viewer").evaluate("card => window.scrollTo(0, card.offsetTop - 12)")
    page.mouse.move(0, 0)
    save(page.screenshot(), out / "console-document.png")


def shoot_eval_runs(page, out: Path) -> None:
    """The stored evaluation runs: their table and trend, and one retrieval run opened
    (per query its ranked documents and nDCG@10 per mode)."""
    newest = page.locator("#eval-table tbody tr[data-kind=retrieval]").first
    newest.get_by_role("button").click()
    page.wait_for_selector("#eval-detail:not([hidden]) #eval-queries tbody tr")
    page.locator("#eval-runs").evaluate("box => window.scrollTo(0, box.offsetTop - 12)")
    page.mouse.move(0, 0)
    save(page.screenshot(), out / "console-eval-runs.png")
    page.locator("#eval-detail").evaluate("box => window.scrollTo(0, box.offsetTop - 12)")
    save(page.screenshot(), out / "console-eval-run.png")


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
    from citewise.sources import text_item
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
                workspace.add_items([text_item(*CRAWLED)], HANDBOOK)
                write_evaluations(workspace, scratch)
                with LiveServer(create_app(workspace)) as live:
                    server = Server(live.url, keys)
                    make_data(server, script)
                    cited = make_console_data(server)
                    shoot(server, args.out, cited)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

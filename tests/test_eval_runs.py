"""Stored evaluation runs (``citewise eval retrieval`` / ``eval answers`` keep a record in
the store; ``citewise eval runs`` / ``eval show``), their console endpoints and Quality
view (a real server, Debian's Chromium through Playwright), and the Health view's
replicas — on SQLite and on PostgreSQL (pgserver), where two servers share one store.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.eval_runs import main_metric
from citewise.evaluation import MEASURES, evaluate_retrieval, explain_query
from citewise.keys import create_key
from citewise.server import create_app
from citewise.storage import open_storage
from conftest import CITEWISE, LiveServer, new_database, standin_workspace, write_beir_dataset
from console_helpers import (
    ConsoleClient,
    axe_problems,
    browser_page,
    empty_console,
    parse_ms,
    sign_in,
)
from standins import Script, stand_in

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "eval-runs"
ENDPOINTS = ["/v1/admin/eval/runs", "/v1/admin/eval/runs/1"]

CORPUS = [
    {"_id": "d1", "title": "Apples", "text": "Apples are a red fruit that grows on trees."},
    {"_id": "d2", "title": "Bananas", "text": "Bananas are a yellow fruit rich in potassium."},
    {"_id": "d3", "title": "Cars", "text": "Cars have four wheels and an engine burning petrol."},
    {"_id": "d4", "title": "Trains", "text": "Trains run on steel rails between stations."},
]
HOSTILE = "red apples <img src=x onerror=alert(1)>"  # a query is untrusted text
QUERIES = [
    {"_id": "q1", "text": HOSTILE},
    {"_id": "q2", "text": "yellow bananas potassium"},
    {"_id": "q3", "text": "wheels engine petrol"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\nq3\td4\t1\n"


def write_beir(root: Path) -> Path:
    return write_beir_dataset(root, CORPUS, QUERIES, QRELS)


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITEWISE, "-w", str(workspace), *args], capture_output=True, text=True, timeout=300
    )


# -- the CLI and the Python API store what they print -----------------------------------


def printed_means(stdout: str) -> dict[str, list[str]]:
    """The retrieval table's rows as printed: mode -> its four values (3 decimals)."""
    rows = {}
    for line in stdout.splitlines():
        words = re.findall(r"[\w@.]+", line)
        if words and words[0] in ("bm25", "dense", "hybrid"):
            rows[words[0]] = re.findall(r"\d+\.\d{3}", line)
    return rows


def test_cli_stores_the_run_it_prints(tmp_path: Path) -> None:
    dataset, ws = write_beir(tmp_path / "tiny"), tmp_path / "ws"
    made = cli(ws, "eval", "retrieval", str(dataset), "--mode", "bm25", "--mode", "hybrid")
    assert made.returncode == 0, made.stderr
    assert "Stored as run 1 (citewise eval show 1)." in made.stdout
    printed = printed_means(made.stdout)
    assert set(printed) == {"bm25", "hybrid"}

    listed = cli(ws, "eval", "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert (run["id"], run["kind"], run["queries"]) == (1, "retrieval", 3)
    assert run["dataset"] == str(dataset)
    assert run["settings"]["collection"] == "beir-tiny"
    assert run["settings"]["modes"] == ["bm25", "hybrid"] and run["settings"]["depth"] == 100
    for mode, values in printed.items():  # stored to the digit the table shows
        assert [f"{run['metrics'][mode][label]:.3f}" for label in MEASURES.values()] == values
    assert run["main_metric"]["name"] == "nDCG@10" and run["main_metric"]["mode"] == "hybrid"

    shown = json.loads(cli(ws, "eval", "show", "1", "--json").stdout)
    assert [r["id"] for r in shown["results"]] == ["q1", "q2", "q3"]
    assert shown["results"][0]["query"] == HOSTILE
    assert shown["results"][2]["expected"] == {"d3": 1, "d4": 1}
    assert shown["results"][1]["modes"]["bm25"]["ranked"][0][0] == "d2"
    table = cli(ws, "eval", "runs")
    assert "retrieval" in table.stdout and "nDCG@10 (hybrid)" in table.stdout

    skipped = cli(ws, "eval", "retrieval", str(dataset), "--mode", "bm25", "--no-save")
    assert skipped.returncode == 0, skipped.stderr
    assert "Stored as run" not in skipped.stdout
    assert len(json.loads(cli(ws, "eval", "runs", "--json").stdout)) == 1
    missing = cli(ws, "eval", "show", "7")
    assert missing.returncode != 0 and "no evaluation run 7" in missing.stderr


def test_the_api_stores_each_query_ranking_as_explain_shows_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    dataset = write_beir(tmp_path / "tiny")
    report = evaluate_retrieval(workspace, dataset)
    assert report.run_id is not None
    run = workspace.store.eval_run(report.run_id)
    assert run is not None and run["metrics"] == report.means
    assert run["settings"]["embedder"] == workspace.settings.embedder
    q3 = next(r for r in run["results"] if r["id"] == "q3")
    explained = explain_query(workspace, dataset, "q3")  # what --explain prints
    for mode, result in explained.modes.items():
        stored = q3["modes"][mode]
        assert [(d, pytest.approx(s)) for d, s in stored["ranked"]] == [
            (doc.document, doc.score) for doc in result.top
        ]
        assert stored["metrics"]["nDCG@10"] == pytest.approx(result.ndcg10)
        assert stored["metrics"]["nDCG@10"] == report.per_query[mode]["q3"]["ndcg_cut_10"]
    before = len(workspace.store.eval_runs())
    assert evaluate_retrieval(workspace, dataset, modes=("bm25",), save=False).run_id is None
    assert len(workspace.store.eval_runs()) == before


def test_main_metric_per_kind() -> None:
    retrieval = {"bm25": {"nDCG@10": 0.5}, "hybrid": {"nDCG@10": 0.7}}
    assert main_metric("retrieval", retrieval) == {
        "name": "nDCG@10",
        "mode": "hybrid",
        "value": 0.7,
    }
    assert main_metric("retrieval", {"dense": {"nDCG@10": 0.2}})["mode"] == "dense"
    assert main_metric("answers", {"token_f1": 0.4, "citation_recall": 1.0})["value"] == 0.4
    assert main_metric("answers", {"citation_recall": 0.25}) == {
        "name": "citation_recall",
        "mode": None,
        "value": 0.25,
    }


# -- both backends --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_both_backends_store_list_and_read_runs_and_replicas(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = new_database(request.getfixturevalue("postgres")) if backend == "postgresql" else ""
    store = open_storage(url, tmp_path)
    try:
        assert store.eval_runs() == [] and store.eval_run(1) is None
        results = [{"id": "q1", "query": "ä <b>", "expected": {"d1": 1}, "modes": {}}]
        first = store.add_eval_run(
            "retrieval", "data/tiny", 1, {"k": 100}, {"bm25": {"nDCG@10": 0.5}}, results
        )
        second = store.add_eval_run(
            "answers", "qa.jsonl", 2, {"model": "m"}, {"token_f1": 0.25}, []
        )
        listed = store.eval_runs()
        assert [r["id"] for r in listed] == [second, first]  # newest first
        assert listed[1]["metrics"] == {"bm25": {"nDCG@10": 0.5}}
        assert "results" not in listed[0] and listed[1]["settings"] == {"k": 100}
        assert store.eval_runs(limit=1) == listed[:1]
        # A kind and a limit: the newest runs of that kind (not those among the newest).
        assert [r["id"] for r in store.eval_runs(limit=1, kind="retrieval")] == [first]
        assert store.eval_runs(kind="answers") == listed[:1]
        one = store.eval_run(first)
        assert one is not None and one["results"] == results and one["queries"] == 1
        assert one["created"] == listed[1]["created"]

        store.beat_replica(
            "a:1:x", "host-a", "10.0.0.1:8080", "1.0", "s1", "2026-01-01T00:00:00+00:00"
        )
        store.beat_replica("b:2:y", "host-b", "", "1.0", "s1", "2026-01-01T00:00:00+00:00")
        store.beat_replica(
            "a:1:x", "host-a", "10.0.0.1:8080", "1.1", "s2", "2026-01-01T00:00:00+00:00"
        )
        seen = {r["id"]: r for r in store.replicas(0)}
        assert set(seen) == {"a:1:x", "b:2:y"}
        assert (seen["a:1:x"]["version"], seen["a:1:x"]["schema"]) == ("1.1", "s2")
        assert seen["a:1:x"]["address"] == "10.0.0.1:8080"
        assert store.replicas(seen["a:1:x"]["last_seen"] + 1) == []
    finally:
        store.close()


# -- the console: endpoints and the Quality view --------------------------------------------


class Console(ConsoleClient):
    workspace: Workspace

    def get(self, path: str, key: str | None = "admin") -> httpx.Response:
        return self.call("GET", path, key)


@pytest.fixture(scope="module")
def console(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server over the ingested corpus (its model the OpenAI stand-in), with a real
    retrieval run and a real answers run stored."""
    root = tmp_path_factory.mktemp("eval-console")
    with (
        stand_in("openai", Script()) as (url, _),
        standin_workspace(ingested_template, root, url) as workspace,
    ):
        from citewise.answer_eval import evaluate_answers

        questions = root / "qa.jsonl"
        questions.write_text(
            json.dumps(
                {
                    "question": "How do I rotate the API keys?",
                    "answers": ["keyctl rotate --all"],
                    "sources": ["guide.md"],
                }
            )
            + "\n"
            + json.dumps(
                {"question": "What is the melting point of tungsten?", "answerable": False}
            )
            + "\n"
        )
        evaluate_answers(workspace, questions)
        evaluate_retrieval(workspace, write_beir(root / "tiny"), modes=("bm25", "hybrid"))
        keys = {
            name: create_key(workspace.store, name, ["*"], scopes)[0]
            for name, scopes in [("admin", ["admin"]), ("reader", ["ask"])]
        }
        with LiveServer(create_app(workspace)) as live:
            yield Console(live, workspace, keys)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_the_eval_endpoints_need_an_admin_key(console: Console, path: str) -> None:
    assert console.get(path, key=None).status_code == 401
    refused = console.get(path, key="reader")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert console.get(path).status_code == 200


def test_the_eval_endpoints_answer_the_stored_runs(console: Console) -> None:
    body = console.get("/v1/admin/eval/runs").json()
    stored = console.workspace.store.eval_runs()
    assert [r["id"] for r in body["data"]] == [r["id"] for r in stored]
    assert [r["kind"] for r in body["data"]] == ["retrieval", "answers"]
    retrieval = body["data"][0]
    assert retrieval["metrics"] == stored[0]["metrics"]
    assert retrieval["main_metric"]["value"] == stored[0]["metrics"]["hybrid"]["nDCG@10"]
    assert body["data"][1]["main_metric"]["name"] == "token_f1"
    only = console.get("/v1/admin/eval/runs?kind=answers").json()["data"]
    assert [r["kind"] for r in only] == ["answers"]
    assert console.get("/v1/admin/eval/runs?kind=bogus").status_code == 422
    one = console.get(f"/v1/admin/eval/runs/{retrieval['id']}").json()
    assert [r["query"] for r in one["results"]] == [q["text"] for q in QUERIES]
    answers = console.get(f"/v1/admin/eval/runs/{body['data'][1]['id']}").json()
    assert answers["results"][0]["answer"] == Script().reply
    assert "standin-model" in answers["settings"]["model"] and answers["queries"] == 2
    missing = console.get("/v1/admin/eval/runs/999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "eval_run_not_found"
    schema = console.get("/openapi.json").json()["paths"]
    assert "/v1/admin/eval/runs" in schema and "/v1/admin/eval/runs/{run_id}" in schema


def test_quality_view_lists_runs_charts_them_and_drills_down(browser, console: Console) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    runs = console.get("/v1/admin/eval/runs").json()["data"]
    # axe is injected below: the context bypasses the page's CSP.
    with browser_page(browser, height=900, bypass_csp=True) as (page, errors):
        sign_in(page, console.url, console.keys["admin"], "quality")
        for run in runs:
            row = page.locator(f"#eval-table tbody tr[data-id='{run['id']}']")
            row.wait_for()
            main = run["main_metric"]
            label = main["name"] if main["mode"] is None else f"{main['name']} ({main['mode']})"
            label = label.replace("_", " ") if main["mode"] is None else label
            assert row.locator("td[data-col=main]").inner_text() == f"{label} {main['value']:.3f}"
            assert row.locator("td").nth(1).inner_text() == run["kind"]
        # The uPlot trend: a point per run at its time, on its kind's line, at the API's value;
        # its hidden table (what a screen reader reads) lists the same runs and values.
        chart = page.locator("#eval-trend").evaluate(
            "box => ({data: box.uplot.data, runs: box.uplot.runs,"
            " kinds: box.uplot.series.slice(1).map(s => s.label)})"
        )
        by_id = {run["id"]: run for run in runs}
        ordered = sorted(runs, key=lambda r: (parse_ms(r["created"]), r["id"]))
        assert chart["runs"] == [r["id"] for r in ordered]
        assert chart["kinds"] == sorted({r["kind"] for r in runs})
        assert chart["data"][0] == pytest.approx([parse_ms(r["created"]) for r in ordered])
        for line, kind in zip(chart["data"][1:], chart["kinds"], strict=True):
            expected = [
                by_id[i]["main_metric"]["value"] if by_id[i]["kind"] == kind else None
                for i in chart["runs"]
            ]
            assert line == pytest.approx(expected)
        drawn = sum(v is not None for line in chart["data"][1:] for v in line)
        assert drawn == len(runs)
        rows = page.locator("#eval-trend-table tbody tr")
        assert rows.count() == len(runs)
        for n, run in enumerate(ordered):
            assert rows.nth(n).locator("th").inner_text() == str(run["id"])
            assert (
                rows.nth(n).locator("td").last.inner_text() == f"{run['main_metric']['value']:.3f}"
            )
        assert page.get_attribute("#eval-trend", "role") == "img"
        assert "retrieval nDCG@10 (hybrid)" in page.get_attribute("#eval-trend", "aria-label")
        assert page.is_hidden("#eval-empty") and page.is_hidden("#eval-detail")

        # The drill-down by keyboard: the run's button, then Enter.
        retrieval = runs[0]
        button = page.locator(f"#eval-table tr[data-id='{retrieval['id']}'] button")
        assert button.get_attribute("aria-expanded") == "false"
        button.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#eval-detail:not([hidden]) #eval-queries tbody tr")
        assert button.get_attribute("aria-expanded") == "true"
        rows = page.locator("#eval-queries tbody tr")
        assert [rows.nth(i).get_attribute("data-query") for i in range(rows.count())] == [
            "q1",
            "q2",
            "q3",
        ]
        first = rows.nth(0)
        assert first.locator("td[data-col=query]").inner_text() == HOSTILE  # as text
        assert page.locator("#eval-queries img").count() == 0
        detail = console.get(f"/v1/admin/eval/runs/{retrieval['id']}").json()
        bm25 = detail["results"][1]["modes"]["bm25"]
        cell = rows.nth(1).locator("td[data-mode=bm25]")
        assert cell.inner_text() == f"{bm25['metrics']['nDCG@10']:.3f}"
        assert bm25["ranked"][0][0] in rows.nth(1).inner_text()
        assert page.evaluate("document.activeElement.id") == "eval-detail-title"
        page.screenshot(path=str(ARTIFACTS / "quality-eval-runs.png"), full_page=True)
        problems = axe_problems(page, "/admin#quality (a retrieval run open)")

        answers = runs[1]
        page.click(f"#eval-table tr[data-id='{answers['id']}'] button")
        page.wait_for_selector(f"#eval-detail[data-run='{answers['id']}']")
        assert "How do I rotate the API keys?" in page.inner_text("#eval-queries")
        assert page.locator("#eval-queries tbody tr").count() == 2
        problems += axe_problems(page, "/admin#quality (an answers run open)")
    assert not problems, "\n".join(problems)
    assert not errors, errors


def test_health_view_lists_this_replica(browser, console: Console) -> None:
    health = console.get("/v1/admin/health").json()
    (replica,) = health["replicas"]  # SQLite: this process alone
    assert replica["id"] == health["replica"] and replica["this"] and replica["alive"]
    assert replica["address"] == console.url.removeprefix("http://")
    from citewise import __version__

    assert replica["version"] == __version__ and replica["schema"] == health["schema"]
    with browser_page(browser, height=900, bypass_csp=True) as (page, errors):
        sign_in(page, console.url, console.keys["admin"], "health")
        row = page.locator(f"#health-replicas tbody tr[data-replica='{replica['id']}']")
        row.wait_for()
        text = row.inner_text()
        assert "(this one)" in text and "running" in text and __version__ in text
        assert replica["address"] in text and replica["schema"] in text
        assert not axe_problems(page, "/admin#health")
    assert not errors, errors


def test_empty_quality_view_says_which_command_to_run(browser, tmp_path: Path) -> None:
    with empty_console(browser, tmp_path / "empty", "quality") as (page, errors):
        page.wait_for_selector("#eval-empty:not([hidden])")
        assert "citewise eval retrieval DATASET" in page.inner_text("#eval-empty")
        assert page.is_hidden("#eval-table-box") and page.is_hidden("#eval-trend-box")
    assert not errors, errors


# -- PostgreSQL: two servers share one store ------------------------------------------------


def test_postgres_replicas_share_runs_and_see_each_other(postgres: str, tmp_path: Path) -> None:
    from citewise.storage.postgres import _MIGRATIONS
    from citewise.workspace import init_workspace

    directory = init_workspace(tmp_path / "ws", store=new_database(postgres))
    first, second = Workspace.open(directory), Workspace.open(directory)
    try:
        report = evaluate_retrieval(first, write_beir(tmp_path / "tiny"), modes=("bm25",))
        with (
            LiveServer(create_app(first, auth=False)) as one,
            LiveServer(create_app(second, auth=False)) as two,
        ):
            # The run stored through one replica is listed by the other.
            runs = httpx.get(two.url + "/v1/admin/eval/runs", timeout=60).json()["data"]
            assert [r["id"] for r in runs] == [report.run_id]
            assert runs[0]["metrics"]["bm25"] == report.means["bm25"]
            httpx.get(two.url + "/v1/admin/health", timeout=60)  # two learns its address
            health = httpx.get(one.url + "/v1/admin/health", timeout=60).json()
            listed = {r["id"]: r for r in health["replicas"]}
            names = {one.service.jobs.worker, two.service.jobs.worker}
            assert names <= set(listed)
            assert listed[one.service.jobs.worker]["this"]
            assert not listed[two.service.jobs.worker]["this"]
            assert listed[two.service.jobs.worker]["address"] == two.url.removeprefix("http://")
            for name in names:
                assert listed[name]["schema"] == _MIGRATIONS[-1][0] and listed[name]["alive"]
    finally:
        first.close()
        second.close()

"""The operator console (issue 31, item 2): its /v1/admin/... endpoints over HTTP, and the
/admin page in headless Chromium (Debian's, as tests/test_web.py), against a real server
whose model is the OpenAI STAND-IN (tests/standins.py) with known usage and prices.

The data is made here: two keys ask questions (one through an assistant with the response
cache, so a cache hit saves money), one call fails over a 500, a key has a daily budget, an
alias's first target is a second stand-in that always answers 500 (its breaker opens), and
answers are rated through ``POST /v1/feedback``. Every figure the page shows is held to the
ledger (``Ledger.summary``/``rows``), to ``citewise usage --json`` and to the stored feedback;
axe-core (vendored, test-only) checks every view for serious accessibility violations.
Screenshots land in test-artifacts/console/.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.keys import create_key
from citewise.ledger import BudgetRule, LedgerRow, iso
from citewise.server import create_app
from citewise.server.admin_routes import budget_state, usage_series
from conftest import CITEWISE, LiveServer
from console_helpers import (
    AXE,
    ConsoleClient,
    axe_problems,
    browser_page,
    checked_page,
    empty_console,
    parse_ms,
    unlabelled_controls,
)
from console_helpers import sign_in as sign_in_at
from standins import Script, stand_in

pytestmark = pytest.mark.slow  # a real server (and a browser)

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "console"
QUESTION = "How do I rotate the API keys?"
USAGE = (1000, 200)  # what the stand-in reports per call: prompt, completion tokens
BUDGET = 0.05  # alice's daily budget, USD
ENDPOINTS = [
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"name": "never-made", "scopes": ["ask"]}),
    ("DELETE", "/v1/admin/keys/alice", None),
    ("GET", "/v1/admin/usage/series", None),
    ("GET", "/v1/admin/budgets", None),
    ("GET", "/v1/admin/health", None),
    ("GET", "/v1/admin/models", None),
    ("POST", "/v1/admin/models/test", {"target": "openai:standin-model"}),
    ("GET", "/v1/admin/feedback", None),
    ("GET", "/v1/admin/feedback/export", None),
]
FLAKY = "openai:flaky-model"  # the first target of the "resilient" chain: always a 500
STANDIN = "openai:standin-model"
FEEDBACK = [  # (question, rating, comment) posted with a real answer's citations
    (QUESTION, 1, "Clear and sourced"),
    ("Who rotates the keys at night?", 1, None),
    ("What is the refund policy?", -1, "Wrong document <img src=x onerror=alert(1)>"),
]


class Console(ConsoleClient):
    workspace: Workspace


def chat(
    console: Console, key: str, model: str = "citewise", question: str = QUESTION
) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": question}]}
    response = console.call("POST", "/v1/chat/completions", key, json=payload)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def console(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    shutil.copytree(ingested_template / "ws", root / "ws")
    with (
        stand_in("openai", Script(usage=USAGE)) as (url, script),
        stand_in("openai", Script(usage=USAGE, default="500")) as (flaky_url, _),
    ):
        lines = [
            'provider = "openai"',
            'model = "standin-model"',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            "[assistants.cached]",
            'response_cache = "exact"',
            "[assistants.resilient]",
            'model = "resilient"',
            "[models.resilient]",
            f'chain = ["{FLAKY}", "{STANDIN}"]',
            "breaker_failures = 2",
            "breaker_cooldown = 3600",  # stays open while the tests run
            "[models.spare]",  # an alias no assistant uses
            f'chain = ["{STANDIN}"]',
            f'[targets."{STANDIN}"]',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            "input_price = 1.0",
            "output_price = 4.0",
            f'[targets."{FLAKY}"]',
            f'base_url = "{flaky_url}"',
            'api_key_env = "STANDIN_KEY"',
            "max_retries = 0",
            "input_price = 1.0",
            "output_price = 4.0",
            "",
        ]
        (root / "ws" / "citewise.toml").write_text("\n".join(lines), encoding="utf-8")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("STANDIN_KEY", "sk-standin")
            workspace = Workspace.open(root / "ws")
            keys = {
                name: create_key(workspace.store, name, ["*"], scopes)[0]
                for name, scopes in [
                    ("admin", ["admin"]),
                    ("alice", ["ask"]),
                    ("bob", ["ask", "ingest"]),
                    ("victim", ["ask"]),
                ]
            }
            workspace.ledger.set_budget(BudgetRule("key", "alice", "usd", "day", BUDGET))
            try:
                with LiveServer(create_app(workspace)) as live:
                    made = Console(live, workspace, keys)
                    chat(made, "alice")
                    chat(made, "alice")
                    chat(made, "bob", "cached")
                    chat(made, "bob", "cached")  # a cache hit: saved_usd
                    script.behaviours.append("500")  # a failed attempt, then its retry
                    chat(made, "bob")
                    chat(made, "victim")
                    # Two 500s from the flaky target open its breaker (each answer falls
                    # back to the stand-in); the third call skips it.
                    for _ in range(3):
                        chat(made, "bob", "resilient")
                    for question, rating, comment in FEEDBACK:
                        answer = chat(made, "alice", question=question).json()
                        posted = made.call(
                            "POST",
                            "/v1/feedback",
                            "alice",
                            json={
                                "rating": rating,
                                "question": question,
                                "answer": answer["choices"][0]["message"]["content"],
                                "citations": answer["citations"],
                                "model": "citewise",
                                "comment": comment,
                            },
                        )
                        assert posted.status_code == 201, posted.text
                    yield made
            finally:
                workspace.close()


def citewise_usage(console: Console, *args: str) -> list[dict]:
    result = subprocess.run(
        [CITEWISE, "-w", str(console.workspace.path), "usage", "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STANDIN_KEY": "sk-standin"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the API -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_admin_endpoint_needs_an_admin_key(console: Console, method, path, body) -> None:
    kw = {"json": body} if body is not None else {}
    missing = console.call(method, path, None, **kw)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"]["code"] == "missing_api_key"
    for key in ("alice", "bob"):  # ask, and ask + ingest
        refused = console.call(method, path, key, **kw)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "insufficient_scope"
    # Nothing was changed by the refused calls.
    names = {k["name"]: k for k in console.call("GET", "/v1/admin/keys").json()["data"]}
    assert "never-made" not in names and names["alice"]["revoked"] is None


def test_the_admin_endpoints_are_in_the_openapi_schema(console: Console) -> None:
    paths = console.call("GET", "/openapi.json").json()["paths"]
    assert set(paths["/v1/admin/keys"]) == {"get", "post"}
    assert set(paths["/v1/admin/keys/{name}"]) == {"delete"}
    for path in (
        "/v1/admin/usage/series",
        "/v1/admin/budgets",
        "/v1/admin/health",
        "/v1/admin/models",
        "/v1/admin/feedback",
        "/v1/admin/feedback/export",
    ):
        assert "get" in paths[path], path
    assert set(paths["/v1/admin/models/test"]) == {"post"}
    series = {p["name"] for p in paths["/v1/admin/usage/series"]["get"]["parameters"]}
    assert {"bucket", "by", "since", "key"} <= series


def test_keys_are_created_once_listed_and_revoked(console: Console) -> None:
    created = console.call(
        "POST",
        "/v1/admin/keys",
        json={"name": "api-made", "scopes": ["ask"], "collections": ["*"], "rpm": 100},
    )
    assert created.status_code == 201, created.text
    made = created.json()
    secret = made["key"]
    assert secret.startswith("cw-") and secret.startswith(made["prefix"])
    assert (made["scopes"], made["rpm"], made["revoked"]) == (["ask"], 100, None)
    usable = httpx.get(
        console.url + "/v1/collections", headers={"Authorization": f"Bearer {secret}"}
    )
    assert usable.status_code == 200
    listed = {k["name"]: k for k in console.call("GET", "/v1/admin/keys").json()["data"]}
    entry = listed["api-made"]
    assert "key" not in entry and secret not in json.dumps(listed)
    assert entry["requests"] >= 1 and entry["last_used"]
    assert listed["alice"]["last_call"]  # alice's model calls are in the ledger
    again = console.call("POST", "/v1/admin/keys", json={"name": "api-made"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "key_exists"
    bad = console.call("POST", "/v1/admin/keys", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code in (400, 422)
    for body, status in [
        ({"name": "bad name!"}, 422),
        ({"name": "u1", "user": "nobody@example.com"}, 404),
        ({"name": "u2", "user": "nobody@example.com", "scopes": ["ingest"]}, 422),
    ]:
        refused = console.call("POST", "/v1/admin/keys", json=body)
        assert refused.status_code == status, (body, refused.text)
    assert console.call("DELETE", "/v1/admin/keys/api-made").json()["revoked"] is True
    refused = httpx.get(
        console.url + "/v1/collections", headers={"Authorization": f"Bearer {secret}"}
    )
    assert refused.status_code == 401
    assert console.call("DELETE", "/v1/admin/keys/api-made").status_code == 404
    active = console.call("GET", "/v1/admin/keys", params={"revoked": "false"}).json()["data"]
    assert "api-made" not in {k["name"] for k in active}


def test_requests_and_429s_are_counted_per_key(console: Console) -> None:
    made = console.call("POST", "/v1/admin/keys", json={"name": "slow", "rpm": 1}).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    codes = [httpx.get(console.url + "/v1/collections", headers=headers).status_code]
    codes.append(httpx.get(console.url + "/v1/collections", headers=headers).status_code)
    assert codes == [200, 429]
    listed = {k["name"]: k for k in console.call("GET", "/v1/admin/keys").json()["data"]}
    assert (listed["slow"]["requests"], listed["slow"]["rate_limited"]) == (2, 1)


@pytest.mark.parametrize("by", ["key", "model", "assistant", "purpose"])
def test_usage_series_totals_are_the_ledgers_and_the_clis(console: Console, by: str) -> None:
    ledger = console.workspace.ledger
    body = console.call("GET", "/v1/admin/usage/series", params={"by": by}).json()
    summary = ledger.summary(by)
    assert [t["group"] for t in body["totals"]] == [str(s[by]) for s in summary]
    cli = citewise_usage(console, "--by", by)
    for total, expected, printed in zip(body["totals"], summary, cli, strict=True):
        for name in ("calls", "failed", "prompt_tokens", "completion_tokens", "cost_usd"):
            assert total[name] == expected[name] == printed[name], (by, name)
    # The buckets add up to the totals.
    for total in body["totals"]:
        cells = [c for c in body["data"] if c["group"] == total["group"]]
        assert sum(c["calls"] for c in cells) == total["calls"]
        assert sum(c["tokens"] for c in cells) == total["tokens"]
        assert sum(c["cost_usd"] or 0 for c in cells) == pytest.approx(total["cost_usd"] or 0)
    rows = ledger.rows()
    assert sum(t["cache_hits"] for t in body["totals"]) == sum(r.cache_hit for r in rows) >= 1
    saved = sum(r.saved_usd or 0 for r in rows)
    assert sum(t["saved_usd"] or 0 for t in body["totals"]) == pytest.approx(saved) and saved > 0


def test_usage_series_by_hour_since_a_time_and_for_one_key(console: Console) -> None:
    ledger = console.workspace.ledger
    since = ledger.rows()[2].at
    body = console.call(
        "GET",
        "/v1/admin/usage/series",
        params={"bucket": "hour", "by": "model", "since": since, "key": "bob"},
    ).json()
    rows = ledger.rows(since, "bob")
    assert body["buckets"] == sorted({r.at[:13] + ":00:00Z" for r in rows})
    assert sum(c["calls"] for c in body["data"]) == len(rows)
    assert body["totals"][0]["calls"] == ledger.summary("model", since, "bob")[0]["calls"]
    for params, name in [
        ({"bucket": "week"}, "bucket"),
        ({"by": "day"}, "by"),
        ({"since": "yesterday"}, "since"),
    ]:
        refused = console.call("GET", "/v1/admin/usage/series", params=params)
        assert refused.status_code == 422 and refused.json()["error"]["param"] == name
    unknown = console.call("GET", "/v1/admin/usage/series", params={"group_by": "key"})
    assert unknown.status_code == 400


def test_budgets_show_what_was_spent_and_when_it_runs_out(console: Console) -> None:
    body = console.call("GET", "/v1/admin/budgets").json()
    (budget,) = body["data"]
    today = iso(datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
    spent = sum(r.cost_usd or 0 for r in console.workspace.ledger.rows(today, "alice"))
    assert budget["subject"] == "alice" and budget["amount"] == BUDGET
    assert budget["spent"] == pytest.approx(spent) and spent > 0
    assert budget["remaining"] == pytest.approx(BUDGET - spent)
    assert budget["burn"] and budget["burn"][-1]["spent"] == pytest.approx(spent)
    assert budget["resets_at"] > budget["period_start"]


def test_health_shows_the_components_version_and_schema(console: Console) -> None:
    from citewise import __version__

    body = console.call("GET", "/v1/admin/health").json()
    assert body["version"] == __version__
    assert body["components"] == {"store": "ok", "ledger": "ok", "rate_limits": "ok", "model": "ok"}
    assert body["schema"] == console.workspace.store.schema_version()[-1]
    assert body["replica"] == console.live.service.jobs.worker


def test_budget_projection_from_the_periods_burn_rate() -> None:
    now = datetime(2026, 12, 10, 12, 0, tzinfo=timezone.utc)

    def row(hours_ago: float, cost: float) -> LedgerRow:
        at = iso(now - timedelta(hours=hours_ago))
        return LedgerRow(
            "c",
            1,
            at,
            "k",
            "citewise",
            "answer",
            "a",
            "t",
            "p",
            "m",
            10,
            5,
            0,
            False,
            cost,
            0.1,
            0.05,
            "ok",
        )

    rule = BudgetRule("key", "k", "usd", "month", 10.0)
    # 9 days and 12 hours into December, $2.28 spent: $0.01 an hour, $7.72 left = 772 h.
    state = budget_state(rule, [row(200, 1.0), row(1, 1.28)], now)
    assert state["spent"] == pytest.approx(2.28) and state["burn_per_hour"] == pytest.approx(0.01)
    assert state["projected_exhaustion"] is None  # 772 h is past the month's end
    fast = budget_state(rule, [row(2, 9.0)], now)
    expected = now + timedelta(hours=1.0 / (9.0 / 228))
    assert fast["projected_exhaustion"] == iso(expected)
    spent = budget_state(rule, [row(1, 10.0)], now)
    assert spent["exhausted"] and spent["remaining"] == 0
    daily = BudgetRule("key", "k", "tokens", "day", 100.0)
    assert budget_state(daily, [row(30, 1.0)], now)["spent"] == 0  # yesterday's
    assert budget_state(daily, [row(1, 1.0)], now)["spent"] == 15


def test_series_totals_come_from_the_summary_as_given() -> None:
    entry = {"key": "a", "calls": 1, "prompt_tokens": 2, "completion_tokens": 3}
    summary = [entry | {"cost_usd": None, "unpriced_calls": 1, "failed": 0}]
    body = usage_series([], summary, "day", "key")
    assert body["totals"][0]["tokens"] == 5 and body["top"] == ["a"]


# -- the page ------------------------------------------------------------------------


@pytest.fixture
def page(browser, console: Console):
    yield from checked_page(browser)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, console: Console, key: str = "admin", view: str = "usage") -> None:
    sign_in_at(page, console.url, console.keys[key], view)


def usd(value: float | None) -> str:
    return "–" if value is None else f"${value:,.6f}"


def test_the_page_is_served_with_the_strict_csp(console: Console) -> None:
    response = httpx.get(console.url + "/admin")
    assert response.status_code == 200 and "citewise console" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text and " style=" not in response.text
    for name in ("admin.js", "admin.css"):
        asset = httpx.get(f"{console.url}/static/{name}")
        assert asset.status_code == 200 and "content-security-policy" in asset.headers


CHART = """box => ({x: box.uplot.data[0], drawn: box.uplot.data.slice(1),
    names: box.uplot.groups.names, values: box.uplot.groups.values,
    label: box.getAttribute('aria-label'), role: box.getAttribute('role')})"""


def assert_usage_chart_is_the_series(page, console: Console, metric: str, text) -> None:
    """The uPlot chart draws /v1/admin/usage/series' cells (all time, per day, by key),
    stacked, and its hidden table holds the same numbers as text."""
    series = console.call("GET", "/v1/admin/usage/series?bucket=day&by=key").json()
    chart = page.locator("#usage-chart").evaluate(CHART)
    buckets, groups = series["buckets"], series["groups"]
    assert chart["x"] == list(range(len(buckets))) and chart["names"] == groups
    expected = [[None] * len(buckets) for _ in groups]
    for cell in series["data"]:
        expected[groups.index(cell["group"])][buckets.index(cell["bucket"])] = cell[metric] or 0
    assert len(chart["values"]) == len(groups)
    for drawn, wanted in zip(chart["values"], expected, strict=True):
        assert drawn == pytest.approx(wanted)
    # Drawn stacked: the first series drawn is the top of each bar, the sum of the groups.
    assert len(chart["drawn"]) == len(groups)
    tops = [sum(row[i] or 0 for row in expected) for i in range(len(buckets))]
    assert chart["drawn"][0] == pytest.approx(tops)
    assert sum(tops) == pytest.approx(sum(row[metric] or 0 for row in series["totals"]))
    assert chart["role"] == "img" and "by key, stacked" in chart["label"]
    table = page.locator("#usage-chart-table")
    head = table.locator("thead th").all_inner_texts()
    assert head[1:] == [g or "(none)" for g in groups]
    rows = table.locator("tbody tr")
    assert rows.count() == len(buckets)
    for i in range(len(buckets)):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells == ["–" if row[i] is None else text(row[i]) for row in expected]


def test_usage_view_totals_per_key_equal_the_ledger_and_the_cli(page, console: Console) -> None:
    sign_in(page, console)
    page.wait_for_selector("#views-nav:not([hidden])")
    assert console.keys["admin"] not in page.url
    page.select_option("#usage-range", "all")
    rows = page.locator("#usage-groups tbody tr")
    summary = console.workspace.ledger.summary("key")
    cli = {row["key"]: row for row in citewise_usage(console, "--by", "key")}
    page.wait_for_function(
        f"document.querySelectorAll('#usage-groups tbody tr').length == {len(summary)}"
    )
    assert rows.count() == len(summary)
    for expected in summary:
        name = expected["key"]
        row = page.locator(f"#usage-groups tbody tr[data-group='{name}']")
        assert row.locator("[data-col=calls]").inner_text() == str(expected["calls"])
        assert row.locator("[data-col=cost]").inner_text() == usd(expected["cost_usd"])
        assert usd(cli[name]["cost_usd"]) == usd(expected["cost_usd"])
        assert row.locator("[data-col=prompt]").inner_text() == f"{expected['prompt_tokens']:,}"
    total = sum(s["cost_usd"] or 0 for s in summary)
    assert page.inner_text("#total-cost") == usd(total)
    assert page.inner_text("#total-calls") == str(sum(s["calls"] for s in summary))
    hits = sum(r.cache_hit for r in console.workspace.ledger.rows())
    assert page.inner_text("#total-cache-hits") == str(hits)
    assert_usage_chart_is_the_series(page, console, "cost_usd", usd)
    # Pointing at a bar writes its bucket's figure per group under the chart.
    page.locator("#usage-chart .u-over").hover()
    chart = page.locator("#usage-chart").evaluate(CHART)
    idx = page.locator("#usage-chart").evaluate("box => box.uplot.cursor.idx")
    said = page.inner_text("#usage-readout")
    shown = [
        (n, v[idx])
        for n, v in zip(chart["names"], chart["values"], strict=True)
        if v[idx] is not None
    ]
    assert shown and all(f"{name or '(none)'} {usd(value)}" in said for name, value in shown), said
    page.select_option("#usage-metric", "tokens")
    assert_usage_chart_is_the_series(page, console, "tokens", lambda v: f"{v:,}")
    page.select_option("#usage-metric", "cost_usd")
    assert page.locator("#usage-legend li").count() == len(summary)
    top = page.locator("#usage-top li .name").all_inner_texts()
    assert top[0] == max(summary, key=lambda s: s["cost_usd"] or 0)["key"]
    shot(page, "01-usage")

    # The calls table, filtered by key and by status.
    calls = console.workspace.ledger.rows()
    page.select_option("#calls-key", "alice")
    alice = [r for r in calls if r.key == "alice"]
    assert page.locator("#calls-table tbody tr").count() == len(alice)
    assert set(
        page.locator("#calls-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.key)")
    ) == {"alice"}
    page.select_option("#calls-key", "")
    statuses = sorted({r.status for r in calls})
    assert page.locator("#calls-status option").all_inner_texts()[1:] == statuses
    odd = [s for s in statuses if s != "ok"]
    if odd:
        page.select_option("#calls-status", odd[0])
        assert page.locator("#calls-table tbody tr").count() == sum(
            r.status == odd[0] for r in calls
        )
    first = page.locator("#calls-table tbody tr").first.locator("td")
    assert first.count() == 12
    shot(page, "02-usage-calls")

    # Grouped by model: one target, every call.
    page.select_option("#usage-by", "model")
    page.wait_for_selector("#usage-groups tbody tr[data-group='openai:standin-model']")
    assert page.inner_text("#groups-by") == "model"


def test_keys_view_creates_a_key_once_and_revoking_it_makes_the_api_refuse_it(
    page, console: Console
) -> None:
    sign_in(page, console, view="keys")
    page.wait_for_selector("#keys-table tbody tr[data-key='alice']")
    alice = page.locator("#keys-table tbody tr[data-key='alice']")
    assert "ask" in alice.inner_text() and "(service)" in alice.inner_text()
    assert "$0.05/day" in alice.inner_text()  # its budget
    # Create: the secret is shown once, and works.
    page.fill("#new-name", "made-in-ui")
    page.check("#create-form input[value=ingest]")
    page.fill("#new-rpm", "60")
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#secret-box:not([hidden])")
    secret = page.input_value("#secret-value")
    assert secret.startswith("cw-")
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(console.url + "/v1/collections", headers=headers).status_code == 200
    row = page.locator("#keys-table tbody tr[data-key='made-in-ui']")
    row.wait_for()
    assert "ask, ingest" in row.inner_text() and "60 rpm" in row.inner_text()
    shot(page, "03-keys-created")
    page.click("#secret-done")
    assert page.input_value("#secret-value") == "" and page.is_hidden("#secret-box")
    # A duplicate name is refused with the server's words.
    page.fill("#new-name", "alice")
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#create-error:has-text('exists')")

    # Revoke victim with the confirmation, by keyboard.
    victim_headers = {"Authorization": f"Bearer {console.keys['victim']}"}
    assert httpx.get(console.url + "/v1/collections", headers=victim_headers).status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    button = page.locator("#keys-table tbody tr[data-key='victim'] button")
    assert button.get_attribute("aria-label") == "Revoke key victim"
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#keys-table tbody tr[data-key='victim']", state="detached")
    refused = httpx.get(console.url + "/v1/collections", headers=victim_headers)
    assert refused.status_code == 401
    page.check("#keys-revoked")
    page.wait_for_selector("#keys-table tbody tr[data-key='victim']:has-text('revoked')")
    shot(page, "04-keys-revoked")


def test_a_non_admin_key_sees_a_clear_message(page, console: Console) -> None:
    sign_in(page, console, key="alice")
    page.wait_for_selector("#forbidden:not([hidden])")
    text = page.inner_text("#forbidden")
    assert "This key lacks the 'admin' scope: the console shows" in text
    assert "citewise keys create --name ops --scopes admin" in text
    assert page.is_hidden("#main") and page.is_hidden("#views-nav")
    shot(page, "05-not-an-admin-key")
    page.click("#forbidden-sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('citewise.key')") is None


def test_a_wrong_key_is_refused_at_sign_in(page, console: Console) -> None:
    page.goto(console.url + "/admin")
    page.fill("#api-key", "cw-wrong")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#sign-in-error:has-text('not accepted')")


def test_budgets_and_health_views(page, console: Console) -> None:
    sign_in(page, console, view="budgets")
    card = page.locator(".budget[data-subject='key:alice']")
    card.wait_for()
    budget = console.call("GET", "/v1/admin/budgets").json()["data"][0]
    assert card.locator("[data-field=spent]").inner_text() == usd(budget["spent"])
    assert card.locator("[data-field=remaining]").inner_text() == usd(budget["remaining"])
    # The burn-down: the API's cumulative spend per hour as steps from zero to what is spent
    # now, the limit, and the projection from now to the reset at the period's rate.
    chart = card.locator(".burn").evaluate("box => box.uplot.data")
    times, spent, limit, projection = chart
    assert times[0] == pytest.approx(parse_ms(budget["period_start"]))
    assert times[-1] == pytest.approx(parse_ms(budget["resets_at"]))
    assert times == sorted(times)
    burn = budget["burn"]
    assert times[1 : len(burn) + 1] == pytest.approx([parse_ms(p["at"]) for p in burn])
    assert spent == pytest.approx([0] + [p["spent"] for p in burn] + [budget["spent"], None])
    assert limit == pytest.approx([BUDGET] * len(times))
    assert budget["burn_per_hour"] > 0
    hours_left = (times[-1] - times[-2]) / 3_600_000
    assert projection[-2:] == pytest.approx(
        [budget["spent"], budget["spent"] + budget["burn_per_hour"] * hours_left]
    )
    assert set(projection[:-2]) == {None}
    label = card.locator(".burn").get_attribute("aria-label")
    assert "limit of $0.05" in label and "run out" in label
    table = card.locator("table.visually-hidden tbody tr")
    assert table.count() == len(burn) + 3  # each hour, now, at this rate, the limit
    assert table.nth(len(burn)).locator("td").inner_text() == usd(budget["spent"])
    assert [table.nth(i).locator("td").inner_text() for i in range(len(burn))] == [
        usd(p["spent"]) for p in burn
    ]
    assert "$0.05" in card.locator("h3").inner_text()
    shot(page, "06-budgets")
    page.click("#views-nav a[data-view=health]")
    page.wait_for_selector("#health-components tbody tr[data-component=store]")
    from citewise import __version__

    assert page.inner_text("#health-version") == __version__
    assert page.inner_text("#health-status") == "ready"
    assert page.get_attribute("#views-nav a[data-view=health]", "aria-current") == "page"
    shot(page, "07-health")


def test_empty_states_say_what_to_do_next(browser, console: Console, tmp_path: Path) -> None:
    with empty_console(browser, tmp_path / "empty", "usage") as (page, _):
        page.wait_for_selector("#usage-empty:not([hidden])")
        assert "citewise ask" in page.inner_text("#usage-empty")
        page.click("#views-nav a[data-view=budgets]")
        page.wait_for_selector("#budgets-empty:not([hidden])")
        assert "citewise budgets set" in page.inner_text("#budgets-empty")


def test_readable_at_phone_width_and_by_keyboard(browser, console: Console) -> None:
    with browser_page(browser, 390, 844) as (page, _):
        sign_in(page, console)
        page.wait_for_selector("#usage-groups tbody tr")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width  # wide tables scroll inside their box, not the page
        # The chart is drawn at its box's width, and again at the new width when the window is
        # resized.
        box = "document.getElementById('usage-chart')"
        fits = f"{box}.uplot.width === {box}.clientWidth && {box}.clientWidth > 0"
        assert page.evaluate(fits)
        assert page.evaluate(f"{box}.clientWidth") < 390
        for wide in (900, 390):  # (wait_for_function would evaluate a string: the CSP says no)
            page.set_viewport_size({"width": wide, "height": 844})
            for _ in range(50):  # the resize handler waits 150 ms for the last event
                page.wait_for_timeout(100)
                if page.evaluate(fits):
                    break
            assert page.evaluate(fits), wide
            assert (page.evaluate(f"{box}.uplot.width") > 390) == (wide > 390)
        shot(page, "08-phone-usage")
        # Every control is labelled.
        assert unlabelled_controls(page) == []
        # The views are reachable with the keyboard.
        page.focus("#views-nav a[data-view=keys]")
        page.keyboard.press("Enter")
        page.wait_for_selector("#view-keys:not([hidden])")
        for view, ready in [("models", ".chain"), ("quality", "#feedback-table tbody tr")]:
            page.click(f"#views-nav a[data-view={view}]")
            page.wait_for_selector(f"#view-{view} {ready}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (view, width)


# -- models and quality (API) ---------------------------------------------------------------


def nearest_rank(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(math.ceil(len(ordered) * share), 1) - 1] if ordered else None


def test_models_show_each_chain_its_breakers_and_last_hours_figures(console: Console) -> None:
    body = console.call("GET", "/v1/admin/models").json()
    chains = {c["name"]: c for c in body["data"]}
    # The default assistant's one target first, then the alias chain, then the unused alias.
    assert [c["name"] for c in body["data"]] == [STANDIN, "resilient", "spare"]
    assert chains[STANDIN]["assistants"] == ["citewise", "cached"]
    assert chains["resilient"]["assistants"] == ["resilient"]
    assert (chains["spare"]["alias"], chains["spare"]["assistants"]) == (True, [])
    flaky, standin = chains["resilient"]["targets"]
    assert (flaky["spec"], standin["spec"]) == (FLAKY, STANDIN)
    assert flaky["breaker"] == "open" and standin["breaker"] == "closed"
    assert chains["resilient"]["breaker_failures"] == 2
    rows = [r for r in console.workspace.ledger.rows(body["since"]) if not r.cache_hit]
    for target in (flaky, standin, chains[STANDIN]["targets"][0]):
        made = [r for r in rows if r.target == target["spec"] and r.status != "circuit_open"]
        failed = [r for r in made if r.status not in ("ok", "cancelled")]
        assert (target["calls"], target["failed"]) == (len(made), len(failed)), target
        assert target["error_rate"] == pytest.approx(len(failed) / len(made))
        latency = [r.latency_s for r in made]
        first = [r.first_token_s for r in made if r.first_token_s is not None]
        assert target["latency_p50_s"] == nearest_rank(latency, 0.5)
        assert target["latency_p95_s"] == nearest_rank(latency, 0.95)
        assert target["first_token_p50_s"] == nearest_rank(first, 0.5)
        assert target["first_token_p95_s"] == nearest_rank(first, 0.95)
    assert flaky["error_rate"] == 1.0 and flaky["failed"] == 2 and flaky["skipped"] == 1
    assert "500" in flaky["last_error"] and flaky["first_token_p50_s"] is None
    assert 0 < standin["error_rate"] < 1  # bob's retried 500 among the answers
    assert flaky["base_url"].startswith("http://127.0.0.1:")


def test_testing_a_target_runs_doctors_check(console: Console) -> None:
    from citewise.providers.check import chain_targets, target_check

    calls = len(console.workspace.ledger.rows())
    good = console.call("POST", "/v1/admin/models/test", json={"target": STANDIN}).json()
    assert good["ok"] is True and good["chain"] == STANDIN
    assert "standin-model answers" in good["detail"], good
    bad = console.call(
        "POST", "/v1/admin/models/test", json={"target": FLAKY, "chain": "resilient"}
    ).json()
    assert bad["ok"] is False and "500" in bad["detail"] and bad["breaker"] == "open"
    # The same check as `citewise doctor` (providers/check.py), called directly.
    settings = console.live.service.assistants["resilient"].settings(console.workspace.settings)
    targets = chain_targets(console.workspace, settings)
    assert [t.spec for t in targets] == [FLAKY, STANDIN]
    assert target_check(console.workspace, targets[1], settings) == good["detail"]
    assert len(console.workspace.ledger.rows()) == calls  # a check is not a charged call
    for body, status in [
        ({"target": "openai:nope"}, 404),
        ({"target": FLAKY, "chain": "spare"}, 404),
    ]:
        refused = console.call("POST", "/v1/admin/models/test", json=body)
        assert refused.status_code == status, refused.text
        assert refused.json()["error"]["code"] == "target_not_found"


def test_doctor_checks_every_target_of_the_chain(console: Console) -> None:
    result = subprocess.run(
        [CITEWISE, "-w", str(console.workspace.path), "doctor", "--model", "resilient"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STANDIN_KEY": "sk-standin", "COLUMNS": "300"},
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the flaky target fails
    assert f"✗ chat model {FLAKY}" in result.stdout and "500" in result.stdout
    assert f"✓ chat model {STANDIN}: standin-model answers" in result.stdout


def test_feedback_is_listed_filtered_and_exported_as_tune_labels(
    console: Console, tmp_path: Path
) -> None:
    from citewise.evaluation import load_labelled_queries
    from citewise.tuning import labels_from_feedback

    body = console.call("GET", "/v1/admin/feedback").json()
    stored = console.workspace.store.feedback()
    assert (body["up"], body["down"]) == (2, 1)
    assert [f["id"] for f in body["data"]] == [r["id"] for r in reversed(stored)]
    newest = body["data"][0]
    assert newest["question"] == FEEDBACK[-1][0] and newest["comment"] == FEEDBACK[-1][2]
    assert newest["key"] == "alice" and newest["citations"] == stored[-1]["citations"]
    down = console.call("GET", "/v1/admin/feedback", params={"rating": -1}).json()["data"]
    assert [f["rating"] for f in down] == [-1]
    refused = console.call("GET", "/v1/admin/feedback", params={"rating": 0})
    assert refused.status_code == 422
    exported = console.call("GET", "/v1/admin/feedback/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    path = tmp_path / "labels.jsonl"
    path.write_text(exported.text, encoding="utf-8")
    queries, qrels = labels_from_feedback(console.workspace, "default")
    positive = {
        qid: {s: 1 for s, grade in grades.items() if grade > 0} for qid, grades in qrels.items()
    }
    positive = {qid: grades for qid, grades in positive.items() if grades}
    assert positive, "the 👍 answers cited something"
    # What `citewise tune labels.jsonl` reads is what `citewise tune --feedback` learns
    # from, 👍 judgements included.
    assert load_labelled_queries(path) == ({q: queries[q] for q in positive}, positive)
    # A collection named outside Latin-1 still makes a valid header (found by the fuzz test).
    named = console.call("GET", "/v1/admin/feedback/export", params={"collection": "Ārchive"})
    assert named.status_code == 200
    disposition = named.headers["content-disposition"]
    assert 'filename="feedback-_rchive.jsonl"' in disposition
    assert "filename*=UTF-8''feedback-%C4%80rchive.jsonl" in disposition


# -- models and quality (the page) --------------------------------------------------------


def test_models_view_shows_the_open_breaker_and_tests_a_target(page, console: Console) -> None:
    sign_in(page, console, view="models")
    chain = page.locator(".chain[data-chain='resilient']")
    chain.wait_for()
    body = console.call("GET", "/v1/admin/models").json()
    expected = {
        t["spec"]: t for c in body["data"] if c["name"] == "resilient" for t in c["targets"]
    }
    flaky = chain.locator(f"tr[data-target='{FLAKY}']")
    assert flaky.locator("[data-col=breaker]").inner_text() == "open (skipped)"
    assert flaky.locator("[data-col=error-rate]").inner_text() == "100.0%"
    assert flaky.locator("[data-col=calls]").inner_text() == "2 (+1 skipped)"
    standin = chain.locator(f"tr[data-target='{STANDIN}']")
    assert standin.locator("[data-col=breaker]").inner_text() == "closed"
    target = expected[STANDIN]
    assert standin.locator("[data-col=error-rate]").inner_text() == (
        f"{100 * target['error_rate']:.1f}%"
    )
    assert standin.locator("[data-col=latency-p95]").inner_text() == (
        f"{target['latency_p95_s']:.2f}"
    )
    assert "500" in flaky.locator("[data-col=last-error]").inner_text()
    assert page.locator(".chain").count() == 3
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width  # the tables scroll inside their cards
    flaky.locator("button").click()
    result = chain.locator(".test-result[data-ok]")
    result.wait_for()
    assert result.get_attribute("data-ok") == "false" and "✗" in result.inner_text()
    standin.locator("button").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".chain[data-chain='resilient'] .test-result[data-ok=true]")
    assert "standin-model answers" in chain.locator(".test-result").inner_text()
    shot(page, "09-models")


def test_quality_view_lists_feedback_filters_and_exports(page, console: Console) -> None:
    from citewise.evaluation import load_labelled_queries

    sign_in(page, console, view="quality")
    rows = page.locator("#feedback-table tbody tr")
    page.wait_for_selector("#feedback-table tbody tr")
    stored = console.workspace.store.feedback()
    assert rows.count() == len(stored) == len(FEEDBACK)
    for entry in stored:
        row = page.locator(f"#feedback-table tbody tr[data-id='{entry['id']}']")
        assert row.locator("[data-col=question]").inner_text() == entry["question"]
        assert row.locator("[data-col=answer]").inner_text() == entry["answer"]
        assert row.locator("[data-col=rating]").inner_text() == (
            "▲ helpful" if entry["rating"] > 0 else "▼ not helpful"
        )
        cited = row.locator("[data-col=citations] li")
        assert cited.count() == len(entry["citations"])
        for item, citation in zip(cited.all_inner_texts(), entry["citations"], strict=True):
            assert citation["title"] in item and citation["location"] in item
    # The hostile comment is text.
    hostile = page.locator("#feedback-table tbody tr[data-rating='-1'] [data-col=comment]")
    assert hostile.inner_text() == FEEDBACK[-1][2]
    assert page.locator("#feedback-table img").count() == 0
    assert "2 helpful, 1 not helpful" in page.inner_text("#feedback-counts")
    shot(page, "10-quality")
    page.select_option("#feedback-rating", "-1")
    page.wait_for_selector("#feedback-table tbody tr[data-rating='1']", state="detached")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-rating") == "-1"
    with page.expect_download() as download:
        page.click("#feedback-export")
    saved = Path(download.value.path())
    api = console.call("GET", "/v1/admin/feedback/export").text
    assert saved.read_text(encoding="utf-8") == api
    assert load_labelled_queries(saved)[0]


# -- accessibility (axe-core) ---------------------------------------------------------------

ADMIN_VIEWS = ["usage", "keys", "models", "quality", "budgets", "health"]


def test_axe_is_for_the_tests_only() -> None:
    web = AXE.parents[2]
    for page in ("index.html", "admin.html", "app.js", "admin.js"):
        # The word, the package or its file (uPlot's "axes" option is not it).
        text = (web / page).read_text(encoding="utf-8").lower()
        assert not re.search(r"\baxe\b|axe-core|axe\.min", text), page


def test_axe_finds_no_serious_violations(browser, console: Console) -> None:
    # axe is injected as an inline script, which the pages' CSP (rightly) refuses: this
    # context alone bypasses the CSP. No page loads axe itself.
    with browser_page(browser, bypass_csp=True) as (page, _):
        problems: list[str] = []
        page.goto(console.url + "/")
        page.wait_for_selector("#sign-in:not([hidden])")
        problems += axe_problems(page, "/ (sign in)")
        sign_in(page, console)
        page.wait_for_selector("#views-nav:not([hidden])")
        for view in ADMIN_VIEWS:
            page.click(f"#views-nav a[data-view={view}]")
            ready = {
                "usage": "#usage-groups tbody tr",
                "keys": "#keys-table tbody tr",
                "models": ".chain",
                "quality": "#feedback-table tbody tr",
                "budgets": ".budget",
                "health": "#health-components tbody tr",
            }[view]
            page.wait_for_selector(f"#view-{view} {ready}")
            problems += axe_problems(page, f"/admin#{view}")
        page.goto(console.url + "/")  # signed in by the console (one key per tab)
        page.wait_for_selector("#app:not([hidden])")
        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        page.locator(".turn .answer[aria-busy=false]").wait_for()
        problems += axe_problems(page, "/ (an answer)")
        page.locator(".turn button.marker").first.click()
        page.wait_for_selector("#source:not([hidden])")
        problems += axe_problems(page, "/ (a source open)")
        page.goto(console.url + "/admin")
        page.click("#sign-out")
        page.wait_for_selector("#sign-in:not([hidden])")
        problems += axe_problems(page, "/admin (sign in)")
    assert not problems, "\n".join(problems)

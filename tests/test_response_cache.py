"""The exact response cache (issue 29, part 2): a repeated question over the same passages
is answered from the cache, never across callers or collections, never after the
passages changed; and the providers' own prompt caches priced honestly.

The model is the OpenAI- or Anthropic-compatible STAND-IN (tests/standins.py), which
records every request it receives: a hit is a request it never saw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from citewise import ProviderError, Workspace
from citewise.keys import create_key
from citewise.providers.base import (
    Finished,
    Message,
    ModelRequest,
    TokenUsage,
    Tool,
    ToolCallDelta,
)
from citewise.providers.router import Price
from citewise.server import create_app
from citewise.storage.response_cache import CacheEntry, SqliteResponseCache
from conftest import LiveServer, served_over_standin
from standins import Script, stand_in

QUESTION = "How do I rotate the API keys?"
PRICES = ("input_price = 1.0", "output_price = 4.0", "cached_input_price = 0.5")


def config_lines(url: str, *extra: str) -> list[str]:
    return [
        'provider = "openai"',
        'model = "standin-model"',
        f'base_url = "{url}"',
        'api_key_env = "STANDIN_KEY"',
        *extra,
        '[targets."openai:standin-model"]',
        *PRICES,
    ]


@pytest.fixture(autouse=True)
def standin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")


@pytest.fixture
def standin(standin_url: tuple[str, Script]) -> tuple[str, Script]:
    url, script = standin_url
    script.served.clear()
    script.behaviours.clear()
    script.reply = Script.reply
    return url, script


def open_cached(path: Path, url: str, *extra: str, **settings: object) -> Workspace:
    """The workspace at ``path`` answering through the stand-in, its cache on."""
    lines = config_lines(url, 'response_cache = "exact"', *extra)
    (path / "citewise.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Workspace.open(path, **settings)


def hits(ws: Workspace) -> list:
    return [row for row in ws.ledger.rows() if row.cache_hit]


# -- over HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    ingested_template: Path, tmp_path_factory: pytest.TempPathFactory, standin_url
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("cache")
    extra = (
        "[assistants.cached]",
        'response_cache = "exact"',
        '[targets."openai:standin-model"]',
        *PRICES,
    )
    with served_over_standin(ingested_template, root, standin_url[0], *extra) as live:
        yield live


@pytest.fixture
def live(server: LiveServer, standin: tuple[str, Script]) -> LiveServer:
    server.service.workspace.response_cache.clear()
    return server


def chat(live: LiveServer, model: str = "cached", **body: object) -> httpx.Response:
    headers = body.pop("headers", None)
    payload = {"model": model, "messages": [{"role": "user", "content": QUESTION}], **body}
    response = httpx.post(
        live.url + "/v1/chat/completions", json=payload, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    return response


def sse_text(response: httpx.Response) -> str:
    parts = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


@pytest.mark.slow  # a server
def test_a_repeated_question_is_served_from_the_cache(live: LiveServer, standin) -> None:
    _, script = standin
    ledger = live.service.workspace.ledger
    before = len(ledger.rows())
    first = chat(live)
    second = chat(live)
    assert first.headers["x-citewise-cache"] == "miss"
    assert second.headers["x-citewise-cache"] == "hit"
    assert len(script.served) == 1  # the model was asked once
    one, two = first.json(), second.json()
    assert two["choices"][0]["message"]["content"] == one["choices"][0]["message"]["content"]
    assert two["citations"] == one["citations"] and two["citations"]
    assert two["usage"]["prompt_tokens"] == 0  # nothing was billed for the hit
    call, hit = ledger.rows()[before:]
    assert (call.cache_hit, hit.cache_hit) == (False, True)
    assert call.cost_usd and call.cost_usd > 0
    assert (hit.status, hit.cost_usd, hit.prompt_tokens, hit.completion_tokens) == ("ok", 0, 0, 0)
    assert hit.saved_usd == pytest.approx(call.cost_usd)
    assert hit.target == call.target == "openai:standin-model"
    metrics = httpx.get(live.url + "/metrics", timeout=10).text
    assert 'citewise_model_calls_total{model="openai:standin-model",status="cache_hit"}' in metrics


@pytest.mark.slow
def test_a_streamed_hit_replays_as_server_sent_events(live: LiveServer, standin) -> None:
    _, script = standin
    first = chat(live, stream=True)
    second = chat(live, stream=True)
    assert first.headers["x-citewise-cache"] == "miss"
    assert second.headers["x-citewise-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert len(script.served) == 1
    text = sse_text(second)
    assert "rotated" in text and text == sse_text(first)
    assert second.text.rstrip().endswith("data: [DONE]")
    # The cache does not care how it was asked: the answer streamed, now whole.
    assert chat(live).headers["x-citewise-cache"] == "hit"
    assert len(script.served) == 1


@pytest.mark.slow
def test_no_cache_and_cache_control_bypass_the_cache(live: LiveServer, standin) -> None:
    _, script = standin
    assert chat(live).headers["x-citewise-cache"] == "miss"
    assert chat(live, no_cache=True).headers["x-citewise-cache"] == "miss"
    bypass = chat(live, headers={"Cache-Control": "no-cache"})
    assert bypass.headers["x-citewise-cache"] == "miss"
    assert len(script.served) == 3
    assert chat(live).headers["x-citewise-cache"] == "hit"
    assert len(script.served) == 3
    # The Responses API takes the same extension.
    response = httpx.post(
        live.url + "/v1/responses",
        json={"model": "cached", "input": QUESTION, "no_cache": True},
        timeout=60,
    )
    assert response.status_code == 200 and response.headers["x-citewise-cache"] == "miss"
    assert len(script.served) == 4


@pytest.mark.slow
def test_an_assistant_without_the_cache_always_asks_the_model(live: LiveServer, standin) -> None:
    _, script = standin
    first, second = chat(live, model="citewise"), chat(live, model="citewise")
    assert "x-citewise-cache" not in first.headers and "x-citewise-cache" not in second.headers
    assert len(script.served) == 2


def test_two_keys_over_different_collections_never_share_an_entry(
    ingested, tmp_path: Path, standin
) -> None:
    ws, _ = ingested
    url, script = standin
    docs = tmp_path / "other"
    docs.mkdir()
    (docs / "keys.md").write_text(
        "# Key rotation\n\nThe security team rotates the API keys every Monday.\n",
        encoding="utf-8",
    )
    ws.ingest([docs], collection="other")
    alpha, _ = create_key(ws.store, "alpha", ["default"], ["ask"])
    beta, _ = create_key(ws.store, "beta", ["other"], ["ask"])
    cached = open_cached(ws.path, url)
    try:
        with LiveServer(create_app(cached)) as live:

            def ask(key: str) -> httpx.Response:
                response = httpx.post(
                    live.url + "/v1/chat/completions",
                    json={"model": "citewise", "messages": [{"role": "user", "content": QUESTION}]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )
                assert response.status_code == 200, response.text
                return response

            script.reply = "Alpha: rotated nightly. [1]"
            first_alpha = ask(alpha)
            script.reply = "Beta: rotated on Mondays. [1]"
            first_beta = ask(beta)
            assert first_alpha.headers["x-citewise-cache"] == "miss"
            assert first_beta.headers["x-citewise-cache"] == "miss"  # not alpha's entry
            assert len(script.served) == 2
            script.reply = "Neither. [1]"
            again_alpha, again_beta = ask(alpha), ask(beta)
            assert again_alpha.headers["x-citewise-cache"] == "hit"
            assert again_beta.headers["x-citewise-cache"] == "hit"
            assert len(script.served) == 2
            alpha_text = again_alpha.json()["choices"][0]["message"]["content"]
            beta_text = again_beta.json()["choices"][0]["message"]["content"]
            assert alpha_text.startswith("Alpha") and beta_text.startswith("Beta")
            assert {c["collection"] for c in again_beta.json()["citations"]} == {"other"}
            assert {c["collection"] for c in again_alpha.json()["citations"]} == {"default"}
    finally:
        cached.close()


# -- invalidation, bypass and limits through the Python API ---------------------------


def test_re_ingesting_or_deleting_the_source_makes_the_next_question_a_miss(
    ingested, tmp_path: Path, standin
) -> None:
    ws, _ = ingested
    url, script = standin
    docs = tmp_path / "docs"
    docs.mkdir()
    source = docs / "rotation.md"
    source.write_text("# Rotating keys\n\nThe ops team rotates the API keys nightly.\n")
    cached = open_cached(ws.path, url)
    try:
        cached.ingest([docs])
        cached.ask(QUESTION)
        cached.ask(QUESTION)
        assert len(script.served) == 1 and len(hits(cached)) == 1

        source.write_text("# Rotating keys\n\nThe ops team rotates the API keys weekly.\n")
        assert cached.ingest([docs]).updated == 1
        cached.ask(QUESTION)
        assert len(script.served) == 2  # the re-ingest bumped the generation: a miss
        cached.ask(QUESTION)
        assert len(script.served) == 2 and len(hits(cached)) == 2

        source.unlink()
        assert cached.sync([docs]).deleted == 1
        answer = cached.ask(QUESTION)
        assert len(script.served) == 3 and len(hits(cached)) == 2
        assert all(c.hit.source != str(source) for c in answer.citations)
    finally:
        cached.close()


def test_the_python_api_bypasses_with_no_cache(ingested, standin) -> None:
    ws, _ = ingested
    url, script = standin
    cached = open_cached(ws.path, url)
    try:
        cached.ask(QUESTION, caller="alice")
        cached.ask(QUESTION, caller="alice", no_cache=True)
        assert len(script.served) == 2 and not hits(cached)
        cached.ask(QUESTION, caller="bob")  # another caller: its own entry
        assert len(script.served) == 3
        answer = cached.ask(QUESTION, caller="alice")
        assert len(script.served) == 3 and [r.key for r in hits(cached)] == ["alice"]
        assert "rotated" in answer.text and answer.citations
    finally:
        cached.close()


def test_an_entry_expires_after_the_ttl(ingested, standin) -> None:
    ws, _ = ingested
    url, script = standin
    cached = open_cached(ws.path, url, "response_cache_ttl = 1")
    try:
        cached.ask(QUESTION)
        cached.ask(QUESTION)
        assert len(script.served) == 1
        time.sleep(1.2)
        cached.ask(QUESTION)
        assert len(script.served) == 2
    finally:
        cached.close()


def test_a_failed_or_cut_response_is_never_kept(ingested, standin) -> None:
    ws, _ = ingested
    url, script = standin
    cached = open_cached(ws.path, url)
    try:
        script.behaviours.append("reset:2")  # breaks mid-answer: no continuation
        with pytest.raises(ProviderError):
            cached.ask(QUESTION)
        assert cached.response_cache.stats().entries == 0
        cached.ask(QUESTION)
        assert len(script.served) == 2 and cached.response_cache.stats().entries == 1
    finally:
        cached.close()
    short = open_cached(ws.path, url, answer_tokens=3)  # the stand-in stops at "length"
    try:
        short.response_cache.clear()
        short.ask(QUESTION)
        short.ask(QUESTION)
        assert len(script.served) == 4 and not hits(short)
        assert short.response_cache.stats().entries == 0
    finally:
        short.close()


def test_cache_clear_and_stats_from_the_cli(ingested, standin) -> None:
    from click.testing import CliRunner

    from citewise.cli import cli

    ws, _ = ingested
    url, script = standin
    cached = open_cached(ws.path, url)
    cached.ask(QUESTION)
    cached.ask(QUESTION)
    cached.close()
    runner = CliRunner()
    stats = runner.invoke(cli, ["-w", str(ws.path), "cache", "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    summary = json.loads(stats.stdout)
    assert (summary["entries"], summary["hits"]) == (1, 1) and summary["saved_usd"] > 0
    cleared = runner.invoke(cli, ["-w", str(ws.path), "cache", "clear"])
    assert cleared.exit_code == 0 and "Cleared 1 cached response." in cleared.stderr
    again = open_cached(ws.path, url)
    try:
        again.ask(QUESTION)
        assert len(script.served) == 2
    finally:
        again.close()
    fresh = runner.invoke(cli, ["-w", str(ws.path), "ask", QUESTION, "--no-cache"])
    assert fresh.exit_code == 0, fresh.output
    assert len(script.served) == 3
    cached_answer = runner.invoke(cli, ["-w", str(ws.path), "ask", QUESTION])
    assert cached_answer.exit_code == 0 and "rotated" in cached_answer.stdout
    assert len(script.served) == 3


def test_any_write_to_a_searched_collection_misses(ingested, tmp_path: Path, standin) -> None:
    """The key names each collection's generation: even a document the answer never
    retrieves makes the next question a miss (coarse, and never stale)."""
    ws, _ = ingested
    url, script = standin
    docs = tmp_path / "unrelated"
    docs.mkdir()
    (docs / "lunch.md").write_text("# Lunch\n\nThe canteen serves soup on Fridays.\n")
    cached = open_cached(ws.path, url)
    try:
        cached.ask(QUESTION)
        cached.ask(QUESTION)
        assert len(script.served) == 1
        cached.ingest([docs])
        cached.ask(QUESTION)
        assert len(script.served) == 2
    finally:
        cached.close()


def test_a_replayed_stream_carries_tool_calls_and_no_usage(ingested, standin) -> None:
    ws, _ = ingested
    url, script = standin
    cached = open_cached(ws.path, url)
    try:
        model = cached.chat_model()
        tool = Tool("weather", "The weather in a city", {"type": "object", "properties": {}})
        request = ModelRequest(
            (Message("user", "Weather in Paris?"),), tools=(tool,), cache=True, caller="alice"
        )
        script.behaviours.append("tool_call")
        first = list(model.generate(request))
        second = list(model.generate(request))
        assert len(script.served) == 1
        done_first, done_second = first[-1], second[-1]
        assert isinstance(done_first, Finished) and isinstance(done_second, Finished)
        assert (done_first.cache, done_second.cache) == ("miss", "hit")
        assert done_second.finish_reason == "tool_calls" and done_second.attempts == ()
        assert done_second.usage == TokenUsage() and done_second.target == done_first.target

        def joined(events: list) -> tuple[str, str, str]:
            deltas = [e for e in events if isinstance(e, ToolCallDelta)]
            return (
                next(d.id for d in deltas if d.id),
                next(d.name for d in deltas if d.name),
                "".join(d.arguments for d in deltas),
            )

        assert joined(second) == joined(first) == ("call_1", "weather", '{"city": "Paris"}')
        # Another caller, or the same request not asking for the cache, is no hit.
        list(model.generate(replace(request, caller="bob")))
        list(model.generate(replace(request, cache=False)))
        assert len(script.served) == 3
    finally:
        cached.close()


def test_an_assistant_may_not_set_the_workspaces_cache_limits(tmp_path: Path) -> None:
    from citewise.config import read_assistants
    from citewise.errors import ConfigError

    (tmp_path / "citewise.toml").write_text(
        '[assistants.support]\nresponse_cache = "exact"\nresponse_cache_ttl = 5\n'
    )
    with pytest.raises(ConfigError, match="response_cache_ttl is the workspace's"):
        read_assistants(tmp_path)
    (tmp_path / "citewise.toml").write_text('[assistants.support]\nresponse_cache = "exact"\n')
    assert read_assistants(tmp_path)["support"].overrides == (("response_cache", "exact"),)


# -- the store -------------------------------------------------------------------------


def entry(key: str, text: str = "An answer. [1]") -> CacheEntry:
    return CacheEntry(key, text, (), "stop", "openai", "m", "openai:m", 10, 5, 0, 0, 0.001)


def test_the_store_expires_entries_and_evicts_the_oldest(tmp_path: Path) -> None:
    now = [1000.0]
    store = SqliteResponseCache(tmp_path / "cache.db", ttl=60, max_entries=2, clock=lambda: now[0])
    store.put(entry("a"))
    now[0] += 1
    store.put(entry("b"))
    now[0] += 1
    store.put(entry("c"))  # over the limit: "a", the oldest, goes
    assert store.get("a") is None
    assert store.get("b") is not None and store.get("c") is not None
    assert store.stats().entries == 2
    now[0] += 59  # "b" was kept at 1001: expired at 1061
    assert store.get("b") is None and store.get("c") is not None
    assert store.stats().expired == 1
    got = store.get("c")
    assert got is not None and got.text == "An answer. [1]" and got.expires_at == 1062
    assert store.clear() == 2 and store.get("c") is None
    store.close()


def test_tool_calls_round_trip_through_the_store(tmp_path: Path) -> None:
    store = SqliteResponseCache(tmp_path / "cache.db", ttl=60, max_entries=10)
    calls = (("call_1", "weather", '{"city": "Paris"}'),)
    store.put(CacheEntry("k", "", calls, "tool_calls", "openai", "m", "openai:m", 1, 1, 0, 0, None))
    got = store.get("k")
    assert got is not None and got.tool_calls == calls and got.cost_usd is None
    store.close()


# -- the providers' own prompt caches ------------------------------------------------------


def test_prompt_cache_reads_and_writes_are_priced_apart() -> None:
    price = Price(1.0, 4.0, cached_input=0.1, cache_write_input=1.25)
    usage = TokenUsage(1000, 100, cached_tokens=200, cache_write_tokens=300)
    assert price.cost(usage) == pytest.approx((500 * 1.0 + 200 * 0.1 + 300 * 1.25 + 400) / 1e6)
    # Unset, a cache write costs what any prompt token costs.
    plain = Price(1.0, 4.0)
    assert plain.cost(usage) == pytest.approx((1000 * 1.0 + 400) / 1e6)
    total = usage + TokenUsage(10, 1, 2, cache_write_tokens=3)
    assert (total.prompt_tokens, total.cached_tokens, total.cache_write_tokens) == (1010, 202, 303)


def test_anthropic_cache_writes_reach_the_ledger_at_their_price(ingested) -> None:
    ws, _ = ingested
    with stand_in("anthropic", Script(cache_write=40)) as (url, script):
        lines = [
            'provider = "anthropic"',
            'model = "claude-x"',
            '[targets."anthropic:claude-x"]',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            *PRICES,
            "cache_write_input_price = 1.25",
        ]
        (ws.path / "citewise.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        claude = Workspace.open(ws.path)
        try:
            claude.ask(QUESTION, caller="alice")
            (row,) = claude.ledger.rows()
        finally:
            claude.close()
    served = script.served[0]
    assert (row.cached_tokens, row.cache_write_tokens) == (12, 40)
    assert row.prompt_tokens == served.prompt_tokens
    fresh = served.prompt_tokens - 12 - 40
    expected = (fresh * 1.0 + 12 * 0.5 + 40 * 1.25 + served.completion_tokens * 4.0) / 1e6
    assert row.cost_usd == pytest.approx(expected)

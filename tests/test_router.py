"""The reasoning layer end to end: the official SDKs and citewise's providers, router,
ledger and server against stand-in SaaS servers (tests/standins.py) that fail on purpose."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from citewise import ProviderError, Workspace
from citewise.cli import cli
from citewise.errors import BudgetExceeded
from citewise.keys import create_key
from citewise.ledger import BudgetRule
from citewise.providers.base import Message, ModelRequest, TextDelta, Tool, ToolCallDelta
from citewise.server import create_app
from conftest import LiveServer
from standins import Script, stand_in

QUESTION = "How do I rotate the API keys?"


def configure(ws_path: Path, chain: list[tuple[str, str]], **alias: object) -> None:
    """A ``[models.chain]`` alias over stand-ins: (target spec, base URL) in order."""
    lines = ["", "[models.chain]", f"chain = {json.dumps([spec for spec, _ in chain])}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in alias.items()]
    for spec, url in chain:
        lines += [
            f'[targets."{spec}"]',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
            "first_token_timeout = 3",
            "gap_timeout = 3",
            "max_retries = 1",
            "input_price = 1.0",
            "output_price = 4.0",
            "cached_input_price = 0.5",
        ]
    with (ws_path / "citewise.toml").open("a", encoding="utf-8") as config:
        config.write("\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def standin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")


@pytest.fixture
def two_openai() -> Iterator[tuple[tuple[str, Script], tuple[str, Script]]]:
    with stand_in("openai") as first, stand_in("openai") as second:
        yield first, second


def chain_workspace(ingested, chain: list[tuple[str, str]], **alias: object) -> Workspace:
    ws, _ = ingested
    configure(ws.path, chain, **alias)
    return Workspace.open(ws.path, model="chain")


def test_mid_stream_failure_continues_on_the_next_target_as_one_stream(
    ingested, two_openai
) -> None:
    (url_a, a), (url_b, b) = two_openai
    a.behaviours.append("reset:3")
    ws = chain_workspace(
        ingested,
        [("openai:model-a", url_a), ("openai:model-b", url_b)],
        continue_after_first_token=True,
    )
    with LiveServer(create_app(ws, auth=False)) as live:
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="citewise",
                messages=[{"role": "user", "content": QUESTION}],
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=40,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"] and chunks[-1].usage is not None  # one well-formed stream
    # The stand-in, like OpenAI, starts its answer over: the reader still gets it once.
    assert text == "Keys are rotated every night by the ops team. [1]"
    # The second target was shown the words the reader already had and asked to go on,
    # with what is left of max_tokens.
    continued = b.served[0].body
    assert continued["messages"][-2] == {"role": "assistant", "content": "Keys are rotated "}
    assert "Continue it exactly where it stopped" in continued["messages"][-1]["content"]
    assert continued["max_tokens"] < 40
    rows = ws.ledger.rows()
    assert [(r.target, r.status) for r in rows] == [
        ("openai:model-a", "error"),
        ("openai:model-b", "ok"),
    ]
    assert rows[0].estimated and rows[0].completion_tokens > 0  # counted from what arrived
    assert (rows[1].prompt_tokens, rows[1].completion_tokens, rows[1].estimated) == (
        b.served[0].prompt_tokens,
        b.served[0].completion_tokens,
        False,
    )
    assert chunks[-1].usage.completion_tokens == b.served[0].completion_tokens
    assert chunks[-1].model_extra["citewise"]["target"] == "openai:model-b"  # in the last chunk
    ws.close()


def test_a_continuation_after_a_fallback_is_checked_like_a_first_answer(
    ingested, two_openai
) -> None:
    """The second target's words pass the same sentence checks: a number the passage
    does not state ("48 hours" where it says 24) never reaches the reader."""
    (url_a, a), (url_b, b) = two_openai
    a.reply = b.reply = "The old keys stay valid for 48 hours after rotation. [1]"
    a.behaviours.append("reset:3")
    chain_workspace(
        ingested,
        [("openai:model-a", url_a), ("openai:model-b", url_b)],
        continue_after_first_token=True,
    ).close()
    ws, _ = ingested
    with Workspace.open(ws.path, model="chain", answer_check="strict") as checked:
        answer = checked.ask("How long do the old API keys stay valid after rotation?")
    assert b.served and "continue it exactly" in b.served[0].body["messages"][-1]["content"].lower()
    assert "48" not in answer.text and "24 hours" in answer.text, answer.text
    assert answer.extractive and any("48" in w for w in answer.warnings)


def test_retries_and_fallbacks_cannot_overspend_a_budget(ingested, two_openai) -> None:
    """Each further call holds another worst case first: 20 concurrent requests that each
    need two calls (a break mid-answer, then the next target) at a budget for 6 calls."""
    (url_a, a), (url_b, b) = two_openai
    a.default, b.delay_per_chunk = "reset:2", 0.02
    ws = chain_workspace(
        ingested,
        [("openai:model-a", url_a), ("openai:model-b", url_b)],
        continue_after_first_token=True,
    )
    probe = ws.ask_stream(QUESTION, settings=replace(ws.settings, answer_tokens=50))
    probe.close()
    assert probe.prompt is not None
    worst = probe.prompt.prompt_tokens + 50
    b.usage = (probe.prompt.prompt_tokens, 50)
    ws.ledger.set_budget(BudgetRule("key", "pair", "tokens", "day", 6 * worst))
    settings = replace(ws.settings, answer_tokens=50)

    def ask(_: int) -> str:
        try:
            stream = ws.ask_stream(QUESTION, settings=settings, caller="pair")
            return "".join(stream) and "served"
        except BudgetExceeded:
            return "refused"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(ask, range(20)))
    rows = ws.ledger.rows(key="pair")
    spent = sum(r.prompt_tokens + r.completion_tokens for r in rows)
    ws.close()
    assert spent <= 6 * worst, (spent, 6 * worst)
    # At most three can be served (two calls each). How many are depends on timing: when six
    # first calls take the six holds before any second call asks, all six break having
    # spent their prompts, and none may go on — refusing them all is the budget working.
    served = outcomes.count("served")
    assert served <= 3 and "refused" in outcomes, outcomes
    assert served == sum(r.status == "ok" for r in rows)  # the ledger agrees with the callers


def test_without_continuation_a_broken_stream_ends_with_an_error_then_done(
    ingested, two_openai, caplog: pytest.LogCaptureFixture
) -> None:
    (url_a, a), (url_b, b) = two_openai
    a.default = "error_body:2"
    ws = chain_workspace(ingested, [("openai:model-a", url_a), ("openai:model-b", url_b)])
    caplog.set_level(logging.INFO, logger="citewise.access")
    with LiveServer(create_app(ws, auth=False)) as live:
        body = {
            "model": "citewise",
            "stream": True,
            "messages": [{"role": "user", "content": QUESTION}],
        }
        with httpx.stream(
            "POST", live.url + "/v1/chat/completions", json=body, timeout=60
        ) as response:
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError, match="error in the stream"):  # never half an answer
            list(
                client.chat.completions.create(
                    model="citewise", stream=True, messages=[{"role": "user", "content": QUESTION}]
                )
            )
        metrics = httpx.get(live.url + "/metrics").text
    # The stream answered 200, then failed: the access log and the metrics say so.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "citewise.access"]
    streamed = [line for line in lines if line["route"] == "/v1/chat/completions"]
    assert len(streamed) == 2
    assert all(line["status"] == 200 and line["outcome"] == "error" for line in streamed)
    assert all(line["error"] == "upstream_error" for line in streamed)
    assert 'citewise_stream_errors_total{type="server_error"} 2.0' in metrics
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "error in the stream" in error["message"]
    assert not b.served  # text had gone out: no silent switch to another model
    ws.close()


def test_failure_before_the_first_token_falls_back_and_says_so(ingested, two_openai) -> None:
    (url_a, a), (url_b, b) = two_openai
    a.default = "500"
    ws = chain_workspace(ingested, [("openai:model-a", url_a), ("openai:model-b", url_b)])
    with LiveServer(create_app(ws, auth=False)) as live:
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="citewise", messages=[{"role": "user", "content": QUESTION}]
        )
        completion = raw.parse()
    assert "rotated" in completion.choices[0].message.content
    assert raw.headers["x-citewise-target"] == "openai:model-b"
    # model-a: its own retry (500 is transient), then the fallback.
    assert raw.headers["x-citewise-attempts"] == (
        "openai:model-a=error, openai:model-a=error, openai:model-b=ok"
    )
    assert len(a.served) == 2 and len(b.served) == 1
    ws.close()


def test_429_retry_after_is_honoured(ingested) -> None:
    with stand_in("openai") as (url, script):
        script.behaviours.extend(["429:1"])
        ws = chain_workspace(ingested, [("openai:model-a", url)])
        answer = ws.ask(QUESTION)
        ws.close()
    assert "rotated" in answer.text
    first, second = script.served
    assert second.at - first.at >= 0.95  # waited the second the server asked for
    assert [a.status for a in answer.attempts] == ["error", "ok"]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("behaviour", ["error_body:2", "no_done:2", "reset:2"])
def test_a_stream_that_breaks_is_an_error_not_a_short_answer(
    ingested, kind: str, behaviour: str
) -> None:
    with stand_in(kind) as (url, script):
        script.default = behaviour
        ws = chain_workspace(ingested, [(f"{kind}:model-a", url)])
        with pytest.raises(ProviderError) as failure:
            ws.ask(QUESTION)
        rows = ws.ledger.rows()
        ws.close()
    assert failure.value.kind == "stream", failure.value
    assert {r.status for r in rows} == {"error"} and rows[0].purpose == "answer"
    # Text had reached the reader, so the same target is not asked again (it would repeat it).
    assert len(rows) == 1 and len(script.served) == 1


def test_a_silent_target_times_out_and_the_next_answers(ingested, two_openai) -> None:
    (url_a, a), (url_b, b) = two_openai
    a.default = "slow:30"
    ws = chain_workspace(ingested, [("openai:model-a", url_a), ("openai:model-b", url_b)])
    answer = ws.ask(QUESTION)
    ws.close()
    assert answer.target == "openai:model-b"
    assert [(x.target, x.status) for x in answer.attempts] == [
        ("openai:model-a", "timeout"),
        ("openai:model-b", "ok"),
    ]
    assert "no first token within 3 s" in answer.attempts[0].error
    assert len(a.served) == 1 and len(b.served) == 1  # a slow target is not retried


def test_the_callers_fault_does_not_fall_back(ingested, two_openai) -> None:
    (url_a, a), (url_b, b) = two_openai
    a.default = "400_context"
    ws = chain_workspace(ingested, [("openai:model-a", url_a), ("openai:model-b", url_b)])
    with pytest.raises(ProviderError, match="no other target was tried") as failure:
        ws.ask(QUESTION)
    assert failure.value.kind == "context_length" and not b.served and len(a.served) == 1
    with LiveServer(create_app(ws, auth=False)) as live:
        response = httpx.post(
            live.url + "/v1/chat/completions",
            timeout=60,
            json={"model": "citewise", "messages": [{"role": "user", "content": QUESTION}]},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    ws.close()


def test_the_circuit_breaker_spares_a_dead_single_target(ingested) -> None:
    with stand_in("openai") as (url, script):
        script.default = "500"
        ws = chain_workspace(
            ingested, [("openai:model-a", url)], breaker_failures=2, breaker_cooldown=1.0
        )
        with LiveServer(create_app(ws, auth=False)) as live:

            def ask() -> httpx.Response:
                return httpx.post(
                    live.url + "/v1/chat/completions",
                    timeout=60,
                    json={"model": "citewise", "messages": [{"role": "user", "content": QUESTION}]},
                )

            first = ask()  # two tries (one retry): the breaker opens
            assert first.status_code == 502 and len(script.served) == 2
            second = ask()  # fails fast without a call
            assert second.status_code == 503 and len(script.served) == 2
            assert "circuit open" in second.json()["error"]["message"]
            time.sleep(1.1)
            script.default = "ok"  # the target recovers; after the cool-down one call probes
            third = ask()
            assert third.status_code == 200 and len(script.served) == 3
        ws.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_ledger_holds_what_the_provider_reported(ingested, kind: str) -> None:
    with stand_in(kind) as (url, script):
        ws = chain_workspace(ingested, [(f"{kind}:model-x", url)])
        answer = ws.ask(QUESTION, caller="alice")
        rows = ws.ledger.rows()
        ws.close()
    served = script.served[0]
    (row,) = rows
    assert (row.key, row.target, row.status, row.estimated) == (
        "alice",
        f"{kind}:model-x",
        "ok",
        False,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (
        served.prompt_tokens,
        served.completion_tokens,
        served.cached_tokens,
    )
    fresh = served.prompt_tokens - served.cached_tokens
    expected = (fresh * 1.0 + served.cached_tokens * 0.5 + served.completion_tokens * 4.0) / 1e6
    assert row.cost_usd == pytest.approx(expected)
    assert answer.usage.prompt_tokens == served.prompt_tokens and not answer.usage.estimated


def test_tool_calls_stream_through_the_contract_and_are_never_continued(ingested) -> None:
    tool = Tool(
        "weather",
        "The weather in a city",
        {"type": "object", "properties": {"city": {"type": "string"}}},
    )
    request = ModelRequest.of(
        [Message("user", "Weather in Paris?")], tools=(tool,), purpose="tools"
    )
    with stand_in("openai") as (url_a, a), stand_in("openai") as (url_b, b):
        a.behaviours.append("tool_call")
        ws = chain_workspace(
            ingested,
            [("openai:model-a", url_a), ("openai:model-b", url_b)],
            continue_after_first_token=True,
        )
        events = list(ws.chat_model().generate(request))
        calls = [e for e in events if isinstance(e, ToolCallDelta)]
        assert (
            calls[0].name == "weather"
            and "".join(c.arguments for c in calls) == '{"city": "Paris"}'
        )
        assert events[-1].finish_reason == "tool_calls" and events[-1].usage.completion_tokens == 11
        assert a.served[0].body["tools"][0]["function"]["name"] == "weather"
        # A text answer broken mid-stream continues (allowed here); a broken tool call does not.
        a.behaviours.append("reset:2")
        text = "".join(
            e.text for e in ws.chat_model().generate(request) if isinstance(e, TextDelta)
        )
        assert text.startswith("Keys are") and len(b.served) == 1
        ws.close()


def test_a_budget_burst_cannot_overspend(ingested) -> None:
    """50 concurrent requests at a budget that allows 5: at most 5 are served."""
    with stand_in("openai") as (url, script):
        script.delay_per_chunk = 0.05  # the requests overlap
        ws = chain_workspace(ingested, [("openai:model-a", url)])
        key = create_key(ws.store, "burst", ["*"], ["ask"])[0]
        # The worst case of one request is what its hold reserves: its prompt + max_tokens.
        probe = ws.ask_stream(QUESTION, settings=replace(ws.settings, answer_tokens=50))
        probe.close()
        assert probe.prompt is not None
        worst = probe.prompt.prompt_tokens + 50
        script.usage = (probe.prompt.prompt_tokens, 50)  # each call really costs its worst case
        ws.ledger.set_budget(BudgetRule("key", "burst", "tokens", "day", 5 * worst))
        with LiveServer(create_app(ws)) as live:

            def ask(_: int) -> httpx.Response:
                return httpx.post(
                    live.url + "/v1/chat/completions",
                    timeout=120,
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "citewise",
                        "max_tokens": 50,
                        "messages": [{"role": "user", "content": QUESTION}],
                    },
                )

            with ThreadPoolExecutor(50) as pool:
                responses = list(pool.map(ask, range(50)))
        statuses = [r.status_code for r in responses]
        spent = sum(r.prompt_tokens + r.completion_tokens for r in ws.ledger.rows(key="burst"))
        ws.close()
    assert statuses.count(200) == 5 and statuses.count(429) == 45, statuses
    refusal = next(r for r in responses if r.status_code == 429)
    assert refusal.json()["error"]["type"] == "insufficient_quota"
    assert "resets at" in refusal.json()["error"]["message"]
    assert refusal.headers["x-should-retry"] == "false"
    assert spent <= 5 * worst and len(script.served) == 5


def test_budgets_refuse_in_the_python_api_and_fail_closed_without_a_price(ingested) -> None:
    ws, _ = ingested
    ws.ledger.set_budget(BudgetRule("key", "carol", "tokens", "month", 10))
    with pytest.raises(BudgetExceeded, match="monthly budget of key 'carol'"):
        ws.ask(QUESTION, caller="carol")
    assert ws.ask(QUESTION, caller="dave").text  # others are not limited
    with stand_in("openai") as (url, _):
        with (ws.path / "citewise.toml").open("a") as config:  # a remote target with no price
            config.write(
                f'\n[models.unpriced]\nchain = ["openai:m"]\n[targets."openai:m"]\n'
                f'base_url = "{url}"\napi_key_env = "STANDIN_KEY"\n'
            )
        ws.ledger.set_budget(BudgetRule("key", "erin", "usd", "day", 5.0))
        priced = Workspace.open(ws.path, model="unpriced")
        with pytest.raises(BudgetExceeded, match="no price configured"):
            priced.ask(QUESTION, caller="erin")
        priced.close()


def test_usage_from_the_cli_the_api_and_prometheus(ingested) -> None:
    with stand_in("openai") as (url, script):
        ws = chain_workspace(ingested, [("openai:model-a", url)])
        admin = create_key(ws.store, "admin", ["*"], ["admin"])[0]
        reader = create_key(ws.store, "reader", ["*"], ["ask"])[0]
        with LiveServer(create_app(ws)) as live:
            for key in (admin, reader):
                httpx.post(
                    live.url + "/v1/chat/completions",
                    timeout=60,
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "citewise", "messages": [{"role": "user", "content": QUESTION}]},
                ).raise_for_status()
            own = httpx.get(
                live.url + "/v1/usage", headers={"Authorization": f"Bearer {reader}"}
            ).json()
            everyone = httpx.get(
                live.url + "/v1/usage?group_by=model", headers={"Authorization": f"Bearer {admin}"}
            ).json()
            other = httpx.get(
                live.url + "/v1/usage?key=admin", headers={"Authorization": f"Bearer {reader}"}
            )
            metrics = httpx.get(
                live.url + "/metrics", headers={"Authorization": f"Bearer {admin}"}
            ).text
        ws.close()
    assert [row["key"] for row in own["data"]] == ["reader"]
    assert everyone["data"][0]["model"] == "openai:model-a" and everyone["data"][0]["calls"] == 2
    assert other.status_code == 403
    served = script.served[0]
    assert (
        f'citewise_model_tokens_total{{key="reader",kind="completion",model="openai:model-a"}} '
        f"{float(served.completion_tokens)}"
    ) in metrics
    assert 'citewise_model_cost_usd_total{key="admin",model="openai:model-a"}' in metrics
    result = CliRunner().invoke(cli, ["-w", str(ws.path), "usage", "--json"])
    assert result.exit_code == 0, result.output
    by_key = {row["key"]: row for row in json.loads(result.output)}
    assert by_key["reader"]["completion_tokens"] == served.completion_tokens
    assert by_key["reader"]["cost_usd"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("max_tokens", [24, 300])  # cut by the limit; ended by the model
def test_the_local_model_reports_its_real_token_counts(ingested, max_tokens: int) -> None:
    """The local provider's usage is llama.cpp's own count, not an estimate."""
    ws, _ = ingested
    model = ws.chat_model()
    messages = [Message("user", "Name three colours of the sea.")]
    events = list(model.generate(ModelRequest.of(messages, max_tokens=max_tokens)))
    final = events[-1]
    llm = model.primary._llm
    reference = llm.create_chat_completion(
        [{"role": "user", "content": messages[0].content}],
        max_tokens=max_tokens,
        temperature=0.0,
        repeat_penalty=model.primary.repeat_penalty,
        frequency_penalty=model.primary.frequency_penalty,
        seed=0,
    )["usage"]
    assert not final.usage.estimated
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (
        reference["prompt_tokens"],
        reference["completion_tokens"],
    )
    assert final.finish_reason == ("length" if max_tokens == 24 else "stop")
    assert final.target == "local:smollm2-135m" and final.provider == "local"
    (row,) = ws.ledger.rows()
    assert (row.prompt_tokens, row.cost_usd, row.status) == (reference["prompt_tokens"], 0.0, "ok")


def test_a_ledger_that_cannot_be_written_refuses_the_call(ingested) -> None:
    """Fail closed: with the database locked by another writer, no budget can be held, so
    the call is refused (503 over HTTP) instead of going through unrecorded."""
    import sqlite3

    from citewise.errors import LedgerUnavailable

    ws, _ = ingested
    ws.store.db.execute("PRAGMA busy_timeout=200")  # this thread's connection gives up fast
    blocker = sqlite3.connect(ws.path / "citewise.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        # Retrieval still reads (WAL); the budget hold cannot be written.
        with pytest.raises(LedgerUnavailable, match="cannot be written, so the call is refused"):
            ws.ask_stream(QUESTION, caller="frank")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert ws.ask(QUESTION, caller="frank").text  # unlocked, it answers and is recorded
    assert [r.key for r in ws.ledger.rows()] == ["frank"]


def test_circuit_breaker_states_with_a_clock() -> None:
    """Closed → open after N failures in the window → one probe after the cool-down (the
    others still skip) → open again if the probe fails, closed if it succeeds."""
    from citewise.providers.router import CircuitBreaker

    now = [0.0]
    breaker = CircuitBreaker(failures=3, window=10.0, cooldown=5.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow() == "call"
        breaker.failed()
    now[0] = 11.0  # the first two failures leave the window
    breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    breaker.failed()
    assert breaker.state == "open" and breaker.allow() is None
    now[0] += 5.0
    assert breaker.allow() == "probe" and breaker.allow() is None  # exactly one probe
    breaker.released("call")  # a caller that was not the probe frees nothing
    assert breaker.allow() is None
    breaker.failed()  # the probe failed: open for another cool-down
    assert breaker.state == "open" and breaker.allow() is None
    now[0] += 5.0
    assert breaker.allow() == "probe"
    breaker.released("probe")  # the probe's caller left: the next caller may probe
    assert breaker.allow() == "probe"
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow() == "call"

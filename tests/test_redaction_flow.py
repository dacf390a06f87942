"""Redaction on the request path: what reaches an external provider (a STAND-IN recording
every request, tests/standins.py) holds no sensitive value, and the reader gets the real
values back — in answers, streams, tool-call arguments, retries and remote embeddings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.config import CONFIG_FILE, Settings
from citewise.errors import RedactionRefused
from citewise.providers import load_chat_model
from citewise.providers.base import Message, ModelRequest, Tool, ToolCall, ToolCallDelta
from standins import Script, stand_in

EMAIL = "dana.whitfield@northwind-billing.com"
PHONE = "(415) 555-2671"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-Qx7Lm2Np9Rt4Vw8Yz3Bc6Df1Gh5Jk0Ls"
SENSITIVE = (EMAIL, PHONE, CARD, API_KEY)
MAIL = f"""# Northwind billing

From the finance mailbox: the billing contact for Northwind is {EMAIL}, reachable on
{PHONE}. The corporate card on file is {CARD}. Their integration uses the API key
{API_KEY} for the invoice export.
"""
QUESTION = "Who is the billing contact for Northwind and which card is on file?"


@pytest.fixture
def mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose one document is a mail holding four kinds of sensitive value."""
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "northwind.md").write_text(MAIL, encoding="utf-8")
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.ingest([tmp_path / "mail"]).added == 1
    return tmp_path / "ws"


def remote(path: Path, url: str, provider: str = "openai", **settings: object) -> Workspace:
    model = "gpt-test" if provider == "openai" else "claude-test"
    return Workspace.open(
        path, provider=provider, model=model, base_url=url, api_key_env="STANDIN_KEY", **settings
    )


def sent(script: Script) -> str:
    """Everything the provider received, as one text."""
    return "\n".join(json.dumps(s.body) for s in script.served)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_provider_never_sees_the_values_and_the_reader_gets_them_back(
    mailbox: Path, provider: str
) -> None:
    with stand_in(provider) as (url, script):
        script.reply = "The billing contact is {placeholders} [1]"
        with remote(mailbox, url, provider, answer_check="off") as ws:
            answer = ws.ask(QUESTION)
            rows = ws.ledger.store.rows()
    received = sent(script)
    assert received and not [value for value in SENSITIVE if value in received]
    assert "<EMAIL_1>" in received and "<CREDIT_CARD_1>" in received
    for value in SENSITIVE:  # the stand-in repeated every placeholder: all come back
        assert value in answer.text
    assert not re.search(r"<[A-Z_]+_\d+>", answer.text)
    assert answer.citations and answer.citations[0].hit.text.count(EMAIL) == 1  # our store's
    counts = dict(part.split(":") for part in rows[-1].redacted.split(","))
    assert counts == {"CREDIT_CARD": "1", "EMAIL": "1", "PHONE": "1", "SECRET": "1"}


def test_a_placeholder_split_across_stream_chunks_is_never_shown_half(mailbox: Path) -> None:
    with stand_in("openai") as (url, script):
        script.reply = "Write to {placeholders} for billing. [1]"
        for size in (1, 3, 4):
            script.chunk_chars = size  # every placeholder is cut somewhere
            with remote(mailbox, url, answer_check="off") as ws:
                pieces = list(ws.ask_stream(QUESTION))
            text = "".join(pieces)
            assert EMAIL in text and CARD in text
            assert not any(re.search(r"<[A-Z_]*$|^[A-Z_]*\d*>", p) for p in pieces), pieces
    assert not [value for value in SENSITIVE if value in sent(script)]


def test_a_retried_request_is_masked_too(mailbox: Path) -> None:
    with stand_in("openai") as (url, script):
        script.reply = "It is {placeholders} [1]"
        script.behaviours.extend(["500", "ok"])
        with remote(mailbox, url, answer_check="off") as ws:
            answer = ws.ask(QUESTION)
    assert [s.behaviour for s in script.served] == ["500", "ok"]
    assert not [value for value in SENSITIVE if value in sent(script)]
    assert EMAIL in answer.text


def test_tool_call_arguments_and_history_are_masked_out_and_restored_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    lookup = Tool("lookup", "Find a customer.", {"type": "object", "properties": {}})
    history = (
        Message("user", f"Who is {EMAIL}?"),
        Message("assistant", tool_calls=(ToolCall("c1", "lookup", json.dumps({"q": EMAIL})),)),
        Message("tool", f"{EMAIL}: Dana Whitfield, card {CARD}", tool_call_id="c1"),
        Message("user", "Look her card up too."),
    )
    with stand_in("openai") as (url, script):
        # Cut after "<": the stand-in streams arguments in two pieces, at the sixth character.
        script.behaviours.append('call:lookup:{"":"<CREDIT_CARD_1>", "who": "<EMAIL_1>"}')
        settings = Settings.load(
            None, provider="openai", model="gpt-test", base_url=url, api_key_env="STANDIN_KEY"
        )
        events = list(load_chat_model(settings).generate(ModelRequest.of(history, tools=(lookup,))))
    received = sent(script)
    assert EMAIL not in received and CARD not in received and "<EMAIL_1>" in received
    arguments = json.loads("".join(e.arguments for e in events if isinstance(e, ToolCallDelta)))
    assert arguments == {"": CARD, "who": EMAIL}


def test_a_blocked_kind_refuses_the_request_and_names_only_the_kind(mailbox: Path) -> None:
    with (
        stand_in("openai") as (url, script),
        remote(mailbox, url, redact_block="CREDIT_CARD") as ws,
    ):
        with pytest.raises(RedactionRefused) as refused:
            ws.ask(QUESTION)
        rows = ws.ledger.store.rows()
    assert refused.value.reason == "blocked" and "CREDIT_CARD" in str(refused.value)
    assert CARD not in str(refused.value)
    assert script.served == []  # nothing left the machine
    assert rows[-1].status == "refused" and "CREDIT_CARD" in (rows[-1].error or "")


def test_a_kind_that_cannot_be_detected_but_must_be_blocked_fails_closed(mailbox: Path) -> None:
    # No spaCy model is installed here, so names cannot be found: refusing is the only
    # safe answer when the policy says names must never be sent.
    with (
        stand_in("openai") as (url, script),
        remote(mailbox, url, redact_block="PERSON") as ws,
        pytest.raises(RedactionRefused) as refused,
    ):
        ws.ask(QUESTION)
    assert refused.value.reason == "detector" and "PERSON" in str(refused.value)
    assert script.served == []


def test_redaction_can_be_turned_off_for_the_workspace_or_one_target(mailbox: Path) -> None:
    with stand_in("openai") as (url, script):
        with remote(mailbox, url, redact="off", answer_check="off") as ws:
            ws.ask(QUESTION)
        assert EMAIL in sent(script)
        script.served.clear()
        (mailbox / CONFIG_FILE).write_text(
            '[targets."openai:gpt-test"]\nredact = false\n', encoding="utf-8"
        )
        with remote(mailbox, url, answer_check="off") as ws:
            ws.ask(QUESTION)
        assert EMAIL in sent(script)


def test_the_server_answers_422_for_blocked_data(mailbox: Path) -> None:
    from citewise.server import create_app
    from conftest import LiveServer

    with (
        stand_in("openai") as (url, script),
        remote(mailbox, url, redact_block="EMAIL") as ws,
        LiveServer(create_app(ws, auth=False)) as live,
    ):
        reply = httpx.post(
            f"{live.url}/v1/chat/completions",
            json={"model": "citewise", "messages": [{"role": "user", "content": QUESTION}]},
            timeout=60,
        )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == "sensitive_data_blocked"
    assert EMAIL not in reply.text and script.served == []


def test_a_remote_embedder_gets_markers_and_keyword_search_still_finds_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "northwind.md").write_text(MAIL, encoding="utf-8")
    with (
        stand_in("openai") as (url, script),
        Workspace.open(
            tmp_path / "ws",
            embedder="openai:text-embedding-3-small",
            base_url=url,
            api_key_env="STANDIN_KEY",
        ) as ws,
    ):
        assert ws.ingest([tmp_path / "mail"]).added == 1
        hits = ws.search(EMAIL, 1, mode="hybrid")
    inputs = "\n".join(json.dumps(s.body["input"]) for s in script.served)
    assert not [value for value in SENSITIVE if value in inputs]
    assert "<EMAIL>" in inputs and "<CREDIT_CARD>" in inputs
    assert hits and hits[0].source.endswith("northwind.md")


def test_a_fallback_target_is_sent_masked_text_too(mailbox: Path) -> None:
    with stand_in("openai") as (first_url, first), stand_in("anthropic") as (second_url, second):
        first.default = "500"  # the first target is down: the chain moves on
        second.reply = "Billing goes to {placeholders} [1]"
        (mailbox / CONFIG_FILE).write_text(
            "\n".join(
                [
                    'model = "chain"',
                    "[models.chain]",
                    'chain = ["openai:first", "anthropic:second"]',
                    '[targets."openai:first"]',
                    f'base_url = "{first_url}"',
                    'api_key_env = "STANDIN_KEY"',
                    "max_retries = 0",
                    '[targets."anthropic:second"]',
                    f'base_url = "{second_url}"',
                    'api_key_env = "STANDIN_KEY"',
                    "",
                ]
            ),
            encoding="utf-8",
        )
        with Workspace.open(mailbox, answer_check="off") as ws:
            answer = ws.ask(QUESTION)
    assert first.served and second.served
    for script in (first, second):
        assert not [value for value in SENSITIVE if value in sent(script)]
    assert EMAIL in answer.text and CARD in answer.text


def test_an_assistant_masks_by_its_own_policy(mailbox: Path) -> None:
    from citewise.config import read_assistants

    (mailbox / CONFIG_FILE).write_text(
        'redact = "off"\n[assistants.hr]\nredact = "on"\n', encoding="utf-8"
    )
    with stand_in("openai") as (url, script):
        script.reply = "It is {placeholders} [1]"
        with remote(mailbox, url, answer_check="off") as ws:
            assistants = read_assistants(ws.path, ws.config)
            general = assistants["citewise"].settings(ws.settings)
            hr = assistants["hr"].settings(ws.settings)
            "".join(ws.ask_stream(QUESTION, settings=general))  # loads the shared model first
            assert EMAIL in sent(script)
            script.served.clear()
            answer = "".join(ws.ask_stream(QUESTION, settings=hr, assistant="hr"))
    assert script.served and not [value for value in SENSITIVE if value in sent(script)]
    assert EMAIL in answer


def test_stop_sequences_tools_and_schemas_are_masked_and_json_stays_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citewise.providers.base import OutputSchema, text_of

    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    schema = {"type": "object", "properties": {"contact": {"const": EMAIL}, "key": {}}}
    with stand_in("openai") as (url, script):
        script.reply = '{"contact": "<EMAIL_1>", "key": "<SECRET_1>"}'
        settings = Settings.load(
            None, provider="openai", model="gpt-test", base_url=url, api_key_env="STANDIN_KEY"
        )
        request = ModelRequest.of(
            [Message("user", f"Key for {EMAIL}:\n{pem}")],
            stop=(EMAIL,),
            output_schema=OutputSchema("contact", schema),
        )
        text, _ = text_of(load_chat_model(settings).generate(request))
    received = sent(script)
    assert EMAIL not in received and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in received
    assert json.loads(text) == {"contact": EMAIL, "key": pem}  # newlines escaped, not raw

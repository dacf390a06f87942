"""Structured output through the model contract: the real local model constrained by a
grammar, and the JSON-schema fields OpenAI's and Anthropic's APIs take (sent to the
labelled stand-ins in standins.py, which cannot check a schema — citewise validates)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from citewise import ConfigError, ModelError, Workspace
from citewise.providers.base import Message
from citewise.providers.openai import strict_compatible
from citewise.structured import generate_json, schema_of
from standins import stand_in

TICKET = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["bug", "feature", "question"]},
        "summary": {"type": "string", "maxLength": 12},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
    },
    "required": ["kind", "summary", "tags"],
    "additionalProperties": False,
}


@pytest.mark.slow
def test_the_local_model_writes_valid_json_on_the_first_try(workspace: Workspace) -> None:
    model = workspace.chat_model()
    ask = [
        Message(
            "user",
            "The export button crashes the app on every click. Write a long, "
            "detailed report of everything that went wrong.",
        )
    ]
    answer = generate_json(
        model, ask, schema_of("ticket", TICKET), max_tokens=120, purpose="classify", caller="alice"
    )
    jsonschema.validate(answer.value, TICKET)
    assert len(answer.value["summary"]) <= 12  # asked for a long report: the grammar held it
    assert answer.target == "local:smollm2-135m"
    rows = workspace.ledger.rows()
    # One call: what the grammar allows is valid, so no second attempt was needed.
    assert [(r.purpose, r.key, r.status) for r in rows] == [("classify", "alice", "ok")]
    assert rows[0].completion_tokens == answer.usage.completion_tokens > 0


def test_an_invalid_schema_is_refused_before_any_call() -> None:
    with pytest.raises(ConfigError, match="invalid JSON schema 'ticket'"):
        schema_of("ticket", {"type": "objekt"})


def test_openai_gets_its_json_schema_field_and_a_bad_answer_is_retried_then_refused(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with stand_in("openai") as (url, script):
        script.reply = '{"kind": "bug", "summary": "export crash", "tags": ["export"]}'
        with Workspace.open(
            tmp_path / "ws", provider="openai", base_url=url, model="gpt-test"
        ) as ws:
            answer = generate_json(
                ws.chat_model(), [Message("user", "Export crashes")], schema_of("ticket", TICKET)
            )
            assert answer.value["kind"] == "bug" and answer.target == "openai:gpt-test"
            sent = script.served[-1].body["response_format"]
            assert sent == {
                "type": "json_schema",
                "json_schema": {"name": "ticket", "schema": TICKET, "strict": True},
            }
            # A server that ignores the schema (or a model that breaks it) is caught.
            script.reply = '{"kind": "complaint", "summary": "x", "tags": []}'
            with pytest.raises(ModelError, match=r"at kind: 'complaint' is not one of"):
                generate_json(
                    ws.chat_model(),
                    [Message("user", "Export crashes")],
                    schema_of("ticket", TICKET),
                )
            retry = script.served[-1].body["messages"]
            assert retry[-2] == {"role": "assistant", "content": script.reply}
            assert "'complaint' is not one of" in retry[-1]["content"]
            assert [r.status for r in ws.ledger.rows()] == ["ok", "ok", "ok"]


def test_anthropic_gets_its_output_format(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with stand_in("anthropic") as (url, script):
        script.reply = '{"kind": "question", "summary": "how to", "tags": []}'
        with Workspace.open(
            tmp_path / "ws", provider="anthropic", base_url=url, model="claude-test"
        ) as ws:
            answer = generate_json(
                ws.chat_model(), [Message("user", "How do I export?")], schema_of("ticket", TICKET)
            )
    assert answer.value == json.loads(script.reply)
    body = script.served[-1].body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": TICKET}}
    assert "JSON Schema" in body["system"]  # the schema is stated to the model as well


def test_strict_mode_only_for_closed_schemas() -> None:
    assert strict_compatible(TICKET)
    open_object = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert not strict_compatible(open_object)
    optional = TICKET | {"required": ["kind"]}
    assert not strict_compatible(optional)
    nested = {"type": "array", "items": open_object}
    assert not strict_compatible(nested)
    assert strict_compatible({"enum": [{"not": "a schema"}]})  # enum values are values
